using TraceUnwind.Model;
using TraceUnwind.Processes;

namespace TraceUnwind.Unwinding;

/// <summary>The architectures the unwinder knows (perf's <c>HEADER_ARCH</c> / ELF e_machine).</summary>
public enum UnwindArch : byte
{
    Unknown,
    X86_64,
    Arm64,
    S390x,
}

/// <summary><c>--unwind auto|sframe|fp|none</c>.</summary>
public enum UnwindMode : byte
{
    /// <summary>SFrame where the module has it, frame pointers elsewhere.</summary>
    Auto,
    /// <summary>SFrame only.</summary>
    SFrame,
    /// <summary>Frame pointers only.</summary>
    FramePointer,
    /// <summary>No unwinding: the sampled user ip only.</summary>
    None,
}

/// <summary>Why a walk ended.</summary>
public enum UnwindStop : byte
{
    /// <summary>The outermost frame was reached (SFrame RA undefined, a zero frame pointer / back chain).</summary>
    Outermost,
    /// <summary>No rule for the ip: no module, no SFrame FDE and frame pointers not allowed.</summary>
    NoRule,
    /// <summary>Stack memory needed for the next step was not in the captured bytes.</summary>
    UnreadableMemory,
    /// <summary>The next frame would be below or at the current one (the stack only grows toward callers).</summary>
    WouldGoBackwards,
    /// <summary>CFA or frame pointer misaligned.</summary>
    Misaligned,
    /// <summary>A frame repeated (loop).</summary>
    Loop,
    /// <summary>The depth cap was reached.</summary>
    DepthCap,
    /// <summary>The sample carried no usable registers (abi 0) or stack.</summary>
    NoRegisters,
    /// <summary>Malformed unwind data (SFrame that failed validation, or a row the unwinder must refuse).</summary>
    BadUnwindInfo,
    /// <summary>A rule needs a register that is only known in the topmost frame (the kernel's rule too).</summary>
    RegisterUnavailable,
    /// <summary>Unwinding was turned off (<c>--unwind none</c>): only the sampled ip.</summary>
    Disabled,
}

/// <summary>
/// A user stack captured by perf <c>--call-graph dwarf</c>: PERF_SAMPLE_REGS_USER (abi, the
/// registers selected by <c>sample_regs_user</c> in bit order) and PERF_SAMPLE_STACK_USER (bytes
/// copied from the user stack pointer upward; <c>dyn_size</c> of them valid).
/// </summary>
public readonly ref struct CapturedUserStack
{
    public CapturedUserStack(UnwindArch arch, ulong abi, ulong regsMask, ReadOnlySpan<ulong> regs, ReadOnlySpan<byte> stack)
    {
        Arch = arch;
        Abi = abi;
        RegsMask = regsMask;
        Regs = regs;
        Stack = stack;
    }

    public UnwindArch Arch { get; }
    /// <summary>PERF_SAMPLE_REGS_ABI: 0 none, 1 32-bit, 2 64-bit.</summary>
    public ulong Abi { get; }
    /// <summary><c>attr.sample_regs_user</c>: bit n set means perf register n is in <see cref="Regs"/>.</summary>
    public ulong RegsMask { get; }
    /// <summary>The register values, one per set bit of <see cref="RegsMask"/>, lowest bit first.</summary>
    public ReadOnlySpan<ulong> Regs { get; }
    /// <summary>The valid stack bytes (already cut to <c>dyn_size</c>), starting at the user SP.</summary>
    public ReadOnlySpan<byte> Stack { get; }
}

/// <summary>
/// Unwinds a captured user stack into frames. Implemented by the unwinding library; the perf front
/// end calls it for samples that carry REGS_USER + STACK_USER. Must not allocate per call.
/// </summary>
public interface IUserStackUnwinder
{
    /// <summary>
    /// Writes the user frames, innermost first (frame 0 = the sampled ip, later frames are return
    /// addresses flagged <see cref="FrameFlags.ReturnAddress"/>), into <paramref name="frames"/>;
    /// returns how many were written and why the walk ended. Mappings come from <paramref name="maps"/>.
    /// </summary>
    int Unwind(in CapturedUserStack stack, AddressSpace maps, Span<Frame> frames, out UnwindStop stop);
}

public static class UnwindArchNames
{
    /// <summary>Maps <c>uname -m</c> (perf's HEADER_ARCH) to an architecture.</summary>
    public static UnwindArch FromUname(string? machine) => machine switch
    {
        "x86_64" or "amd64" => UnwindArch.X86_64,
        "aarch64" or "arm64" => UnwindArch.Arm64,
        "s390x" or "s390" => UnwindArch.S390x,
        _ => UnwindArch.Unknown,
    };
}

/// <summary><c>--unwind</c> values.</summary>
public static class UnwindModeNames
{
    /// <summary>The accepted spellings, for "valid values are ..." messages.</summary>
    public static IReadOnlyList<string> Valid { get; } = ["auto", "sframe", "fp", "none"];

    /// <summary>Parses <c>auto</c>, <c>sframe</c>, <c>fp</c> (or <c>frame-pointer</c>), <c>none</c> (case-insensitive).</summary>
    public static bool TryParse(string? text, out UnwindMode mode)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "auto": mode = UnwindMode.Auto; return true;
            case "sframe": mode = UnwindMode.SFrame; return true;
            case "fp" or "frame-pointer" or "framepointer": mode = UnwindMode.FramePointer; return true;
            case "none": mode = UnwindMode.None; return true;
            default: mode = UnwindMode.Auto; return false;
        }
    }

    public static string ToName(UnwindMode mode) => mode switch
    {
        UnwindMode.SFrame => "sframe",
        UnwindMode.FramePointer => "fp",
        UnwindMode.None => "none",
        _ => "auto",
    };
}

