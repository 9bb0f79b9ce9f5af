using TraceUnwind.Processes;

namespace TraceUnwind.Model;

/// <summary>Which part of a stack a frame belongs to.</summary>
public enum FrameKind : byte
{
    /// <summary>A user-space address (inline callchain, deferred callchain, unwound stack, ftrace user stack).</summary>
    User,
    /// <summary>A kernel address.</summary>
    Kernel,
    /// <summary>Hypervisor context (PERF_CONTEXT_HV).</summary>
    Hypervisor,
    /// <summary>Guest kernel (PERF_CONTEXT_GUEST_KERNEL).</summary>
    GuestKernel,
    /// <summary>Guest user (PERF_CONTEXT_GUEST_USER).</summary>
    GuestUser,
    /// <summary>
    /// Placeholder for a deferred user stack that never arrived (task exited, record lost, end of
    /// stream): printed as <c>[deferred user stack lost]</c>; <see cref="Frame.Address"/> holds the cookie.
    /// </summary>
    UserLost,
    /// <summary>
    /// A deferred-callchain cookie shown as it is (<c>--no-merge</c>); <see cref="Frame.Address"/> is the cookie.
    /// </summary>
    DeferredCookie,
}

/// <summary>Per-frame facts.</summary>
[Flags]
public enum FrameFlags : byte
{
    None = 0,
    /// <summary>Only a heuristic found this frame: printed with <c>? </c>, CSV <c>reliable</c> = false.</summary>
    Unreliable = 1,
    /// <summary>
    /// The address is a return address (a caller frame): symbolize at address - 1, because a
    /// call can be the last instruction of a function; print the address itself, as perf does.
    /// </summary>
    ReturnAddress = 2,
}

/// <summary>
/// One frame of a sample's stack: the runtime address and, where a front end found one, the
/// mapping used to name it. For perf input the mapping contains the address; for ftrace the
/// kernel's <c>find_vma</c> rule applies and the mapping may lie above it (wrapped offset).
/// A small struct; frames live in pooled arrays, never one object per frame.
/// </summary>
public readonly struct Frame
{
    public Frame(ulong address, FrameKind kind, Mapping? mapping = null, FrameFlags flags = FrameFlags.None)
    {
        Address = address;
        Kind = kind;
        Mapping = mapping;
        Flags = flags;
    }

    /// <summary>
    /// A frame whose name the input already carries (ftrace prints kernel frames as symbols,
    /// <c> => do_syscall_64+0x1fa/0x280</c>, with an address only under <c>sym-addr</c>).
    /// </summary>
    public Frame(ulong address, FrameKind kind, Mapping? mapping, FrameFlags flags, string? symbol)
        : this(address, kind, mapping, flags)
    {
        Symbol = symbol;
    }

    public ulong Address { get; }
    public Mapping? Mapping { get; }
    public FrameKind Kind { get; }
    public FrameFlags Flags { get; }

    /// <summary>
    /// The symbol name the front end read from its input (interned), without offset or size;
    /// null when the frame is to be named by an <c>ISymbolizer</c>. Outputs prefer it to a lookup.
    /// </summary>
    public string? Symbol { get; }

    public bool IsReliable => (Flags & FrameFlags.Unreliable) == 0;
    public bool IsUserSide => Kind is FrameKind.User or FrameKind.GuestUser or FrameKind.UserLost or FrameKind.DeferredCookie;

    /// <summary>True when this frame is written <c>path[+0xOFF]</c> (a file-backed mapping was found).</summary>
    public bool HasFileMapping => Mapping is { IsFileBacked: true } && Kind is FrameKind.User or FrameKind.GuestUser;

    /// <summary>The address to look symbols up at: one byte back for return addresses.</summary>
    public ulong LookupAddress => (Flags & FrameFlags.ReturnAddress) != 0 && Address != 0 ? Address - 1 : Address;

    /// <summary><c>ip - mapping start</c> (the sym-userobj offset); 0 without a mapping.</summary>
    public ulong Offset => Mapping is null ? 0 : Mapping.Offset(Address);

    /// <summary><c>ip - mapping start + pgoff</c> (perf's file-relative address); 0 without a mapping.</summary>
    public ulong FileOffset => Mapping is null ? 0 : Mapping.FileOffset(Address);

    public Frame WithFlags(FrameFlags flags) => new(Address, Kind, Mapping, flags, Symbol);

    public override string ToString() => Mapping is { IsFileBacked: true } m
        ? $"{Address:x} {m.Path}[+0x{Offset:x}]"
        : $"{Address:x} ({Kind})";
}
