using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Symbols;
using TraceUnwind.Text;

namespace TraceUnwind.Output;

/// <summary>How a frame without a symbol is named where an output has one name per frame (fold, report, JSON).</summary>
public enum FrameNameStyle : byte
{
    /// <summary>
    /// The project's form (default): a user frame in a file mapping is <c>path[+0xOFF]</c> exactly as the
    /// kernel's sym-userobj prints it; in <c>[vdso]</c>/<c>[vsyscall]</c> it is <c>[vdso][+0xOFF]</c>; any
    /// other address (kernel, anonymous memory, no mapping) is <c>0x%016lx</c>, as <c>perf report</c> prints it.
    /// </summary>
    UserObj,
    /// <summary>
    /// stackcollapse-perf.pl's form of <c>perf script</c> output: <c>[</c>basename of the dso<c>]</c>
    /// (<c>[libc.so.6]</c>, <c>[[kernel.kallsyms]]</c>), or <c>[unknown]</c> when there is no dso. For
    /// flame graphs that must match a FlameGraph pipeline frame for frame.
    /// </summary>
    ModuleName,
}

/// <summary>
/// Names frames the same way in every output; no writer formats a frame itself.
/// <list type="table">
/// <item><term><see cref="WriteScriptSymbol"/></term><description><c>symbol+0xoff</c> / <c>[unknown]</c> / <c>(cookie)</c> /
/// <c>[deferred user stack lost]</c> (perf script's symbol column).</description></item>
/// <item><term><see cref="WriteDso"/></term><description><c>path[+0xOFF]</c> for a user frame in a file mapping,
/// <c>[kernel.kallsyms]</c>, the mapping's own name for non-file mappings (<c>[vdso]</c>, <c>//anon</c>, <c>[heap]</c>),
/// <c>[unknown]</c> without a mapping (perf script's dso column, with our offset).</description></item>
/// <item><term><see cref="WriteModule"/></term><description>the same without <c>[+0xOFF]</c>: perf's dso name.</description></item>
/// <item><term><see cref="WriteName"/></term><description>one name: the symbol without offset when known, else by <see cref="FrameNameStyle"/>.</description></item>
/// </list>
/// Symbols come from the optional <see cref="ISymbolizer"/>; it is never asked about
/// <see cref="FrameKind.UserLost"/> or <see cref="FrameKind.DeferredCookie"/> frames, whose address is a cookie.
/// The Write methods do not allocate (the symbolizer's own cost aside).
/// </summary>
public sealed class FrameNamer
{
    /// <summary>The name of a lost deferred user stack (issue 3), in every output.</summary>
    public const string LostName = "[deferred user stack lost]";
    /// <summary>perf 7.2's symbol text for a cookie marker (<c>--no-merge-callchains</c>).</summary>
    public const string CookieSymbol = "(cookie)";
    public const string Unknown = "[unknown]";
    public const string KernelDso = "[kernel.kallsyms]";
    public const string GuestKernelDso = "[guest.kernel.kallsyms]";

    public FrameNamer(ISymbolizer? symbolizer = null) => Symbolizer = symbolizer;

    public ISymbolizer? Symbolizer { get; }

    /// <summary>
    /// The CSV <c>kind</c> names: <c>user</c>, <c>kernel</c>, <c>hv</c>, <c>guest-kernel</c>, <c>guest-user</c>,
    /// <c>user-lost</c> (issue 3), <c>cookie</c> (a deferred-callchain cookie shown by <c>--no-merge</c>).
    /// </summary>
    public static string KindName(FrameKind kind) => kind switch
    {
        FrameKind.User => "user",
        FrameKind.Kernel => "kernel",
        FrameKind.Hypervisor => "hv",
        FrameKind.GuestKernel => "guest-kernel",
        FrameKind.GuestUser => "guest-user",
        FrameKind.UserLost => "user-lost",
        FrameKind.DeferredCookie => "cookie",
        _ => "unknown",
    };

    /// <summary>True for the kernel-side kinds that stackcollapse's <c>--kernel</c> marks <c>_[k]</c> and perf report marks <c>[k]</c>.</summary>
    public static bool IsKernelSide(FrameKind kind) => kind is FrameKind.Kernel or FrameKind.GuestKernel or FrameKind.Hypervisor;

    /// <summary>Asks the symbolizer (if any) about a real code address.</summary>
    public bool TryResolve(in Frame frame, out SymbolHit hit)
    {
        if (Symbolizer is null || frame.Kind is FrameKind.UserLost or FrameKind.DeferredCookie)
        {
            hit = default;
            return false;
        }
        return Symbolizer.TryResolve(frame, out hit);
    }

    /// <summary>perf script's symbol column: <c>symbol+0xoff</c>, <c>[unknown]</c>, <c>(cookie)</c> or <c>[deferred user stack lost]</c>.</summary>
    public void WriteScriptSymbol(IBufferWriter<byte> writer, in Frame frame)
    {
        switch (frame.Kind)
        {
            case FrameKind.UserLost: WriteUtf8(writer, LostName); return;
            case FrameKind.DeferredCookie: WriteUtf8(writer, CookieSymbol); return;
        }
        if (TryResolve(frame, out var hit))
        {
            WriteUtf8(writer, hit.Name);
            Write0xHex(writer, "+0x"u8, hit.Offset);
        }
        else WriteUtf8(writer, Unknown);
    }

    /// <summary><see cref="Frame.HasFileMapping"/> from its parts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsUserObj(FrameKind kind, Mapping? m) =>
        m is not null && m.Kind == MappingKind.File && kind is FrameKind.User or FrameKind.GuestUser;

    /// <summary>
    /// One frame line of <c>script</c>: <c>\t{address,16:x} [? ]{symbol} ({dso})\n</c>, the symbol as
    /// <see cref="WriteScriptSymbol"/> and the dso as <see cref="WriteDso"/> write them, straight into
    /// <paramref name="destination"/>. Returns the length, or -1 (nothing written) when the line might
    /// not fit: the caller makes room for <paramref name="need"/> bytes and calls again.
    /// </summary>
    internal int TryWriteScriptLine(Span<byte> destination, in Frame frame, out int need)
    {
        var kind = frame.Kind;
        var m = frame.Mapping;
        bool resolved = false;
        SymbolHit hit = default;
        if (Symbolizer is not null) resolved = TryResolve(frame, out hit);
        bool userObj = IsUserObj(kind, m);
        ReadOnlySpan<byte> module = userObj ? default : ModuleBytes(frame);
        // tab, 16 columns, space, "? ", the longest fixed symbol and " (", then the dso, ")\n"; or the symbol + "+0x" + 16.
        need = 1 + 16 + 1 + 2 + 28 + 2 + (userObj ? m!.PathUtf8.Length + 4 + 16 + 1 : module.Length);
        if (resolved) need += Encoding.UTF8.GetMaxByteCount(hit.Name.Length) + 3 + 16;
        if (destination.Length < need) return -1;

        destination[0] = (byte)'\t';
        Hex.WriteFixed16(destination[1..], kind == FrameKind.UserLost ? 0 : frame.Address, (byte)' ');
        destination[17] = (byte)' ';
        int p = 18;
        if ((frame.Flags & FrameFlags.Unreliable) != 0)
        {
            destination[p++] = (byte)'?';
            destination[p++] = (byte)' ';
        }
        if (resolved)
        {
            p += Encoding.UTF8.GetBytes(hit.Name, destination[p..]);
            p += Put(destination, p, "+0x"u8);
            p += Hex.WriteWithSlack(destination[p..], hit.Offset);
            p += Put(destination, p, " ("u8);
        }
        else if (kind == FrameKind.UserLost) p += Put(destination, p, "[deferred user stack lost] ("u8);
        else if (kind == FrameKind.DeferredCookie) p += Put(destination, p, "(cookie) ("u8);
        else p += Put(destination, p, "[unknown] ("u8);
        if (userObj)
        {
            p += Put(destination, p, m!.PathUtf8);
            p += Put(destination, p, "[+0x"u8);
            p += Hex.WriteWithSlack(destination[p..], unchecked(frame.Address - m.Start));
            p += Put(destination, p, "])\n"u8);
        }
        else
        {
            p += Put(destination, p, module);
            p += Put(destination, p, ")\n"u8);
        }
        return p;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Put(Span<byte> destination, int at, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(destination[at..]);
        return bytes.Length;
    }

    /// <summary>
    /// perf script's dso column: <c>path[+0xOFF]</c> (sym-userobj) for a user frame in a file mapping,
    /// otherwise <see cref="WriteModule"/>.
    /// </summary>
    public void WriteDso(IBufferWriter<byte> writer, in Frame frame)
    {
        if (frame.HasFileMapping) UserObj.Write(writer, frame.Mapping!, frame.Address);
        else WriteModule(writer, frame);
    }

    /// <summary>
    /// perf's dso name: the mapping's path (file or <c>[vdso]</c>, <c>//anon</c> for a nameless anonymous mapping),
    /// <c>[kernel.kallsyms]</c> (or the module's <c>[name]</c> when the front end gave a kernel mapping for it),
    /// <c>[guest.kernel.kallsyms]</c>, <c>[unknown]</c> when nothing holds the address.
    /// </summary>
    public void WriteModule(IBufferWriter<byte> writer, in Frame frame) => writer.Write(ModuleBytes(frame));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ReadOnlySpan<byte> ModuleBytes(in Frame frame)
    {
        switch (frame.Kind)
        {
            case FrameKind.Kernel:
                if (frame.Mapping is { Kind: MappingKind.Kernel } km && km.PathUtf8 is [(byte)'[', ..] path
                    && !path.AsSpan().StartsWith("[kernel.kallsyms]"u8))
                    return path;
                return "[kernel.kallsyms]"u8;
            case FrameKind.GuestKernel: return "[guest.kernel.kallsyms]"u8;
            case FrameKind.User or FrameKind.GuestUser when frame.Mapping is { } m:
                return m.PathUtf8.Length == 0 ? "//anon"u8 : m.PathUtf8;
            default: return "[unknown]"u8;
        }
    }

    /// <summary>
    /// One name per frame (fold, report, speedscope, Chromium): the symbol without offset when known,
    /// <c>[deferred user stack lost]</c>, <c>[cookie 0x…]</c>, else by <paramref name="style"/>.
    /// </summary>
    public void WriteName(IBufferWriter<byte> writer, in Frame frame, FrameNameStyle style = FrameNameStyle.UserObj)
    {
        switch (frame.Kind)
        {
            case FrameKind.UserLost: WriteUtf8(writer, LostName); return;
            case FrameKind.DeferredCookie:
                Write0xHex(writer, "[cookie 0x"u8, frame.Address);
                writer.Write("]"u8);
                return;
        }
        if (TryResolve(frame, out var hit))
        {
            WriteUtf8(writer, hit.Name);
            return;
        }
        if (style == FrameNameStyle.ModuleName)
        {
            WriteModuleName(writer, frame);
            return;
        }
        var m = frame.Mapping;
        if (m is not null && frame.Kind is FrameKind.User or FrameKind.GuestUser)
        {
            if (m.IsFileBacked || m.Kind == MappingKind.Special)
            {
                UserObj.Write(writer, m, frame.Address);
                return;
            }
        }
        var span = writer.GetSpan(18);
        span[0] = (byte)'0';
        span[1] = (byte)'x';
        writer.Advance(2 + Hex.Write(span[2..], frame.Address, 16));
    }

    // stackcollapse-perf.pl: $func = $mod; $func =~ s/.*\///; $func = "\[$func\]" unless $mod eq "[unknown]".
    private static void WriteModuleName(IBufferWriter<byte> writer, in Frame frame)
    {
        var module = ModuleBytes(frame);
        if (module.SequenceEqual("[unknown]"u8))
        {
            writer.Write(module);
            return;
        }
        int slash = module.LastIndexOf((byte)'/');
        writer.Write("["u8);
        writer.Write(module[(slash + 1)..]);
        writer.Write("]"u8);
    }

    /// <summary><see cref="WriteName"/> as a string (allocates; for tests and cold paths).</summary>
    public string GetName(in Frame frame, FrameNameStyle style = FrameNameStyle.UserObj) => Render(frame, style, 0);

    /// <summary><see cref="WriteDso"/> as a string.</summary>
    public string GetDso(in Frame frame) => Render(frame, default, 1);

    /// <summary><see cref="WriteModule"/> as a string.</summary>
    public string GetModule(in Frame frame) => Render(frame, default, 2);

    /// <summary><see cref="WriteScriptSymbol"/> as a string.</summary>
    public string GetScriptSymbol(in Frame frame) => Render(frame, default, 3);

    private string Render(in Frame frame, FrameNameStyle style, int what)
    {
        var w = new ArrayBufferWriter<byte>(128);
        switch (what)
        {
            case 0: WriteName(w, frame, style); break;
            case 1: WriteDso(w, frame); break;
            case 2: WriteModule(w, frame); break;
            default: WriteScriptSymbol(w, frame); break;
        }
        return Encoding.UTF8.GetString(w.WrittenSpan);
    }

    internal static void WriteUtf8(IBufferWriter<byte> writer, string s)
    {
        if (s.Length == 0) return;
        int n = Encoding.UTF8.GetBytes(s, writer.GetSpan(Encoding.UTF8.GetMaxByteCount(s.Length)));
        writer.Advance(n);
    }

    private static void Write0xHex(IBufferWriter<byte> writer, ReadOnlySpan<byte> prefix, ulong value)
    {
        var span = writer.GetSpan(prefix.Length + 16);
        prefix.CopyTo(span);
        writer.Advance(prefix.Length + Hex.Write(span[prefix.Length..], value));
    }
}
