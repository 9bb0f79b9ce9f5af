using System.Runtime.CompilerServices;
using TraceUnwind.Text;

namespace TraceUnwind.Ftrace.Parsing;

/// <summary>How a stack frame line is written.</summary>
public enum FrameForm : byte
{
    /// <summary><c>" =>  &lt;00007f1d159eeb1d&gt;"</c>: a user frame with sym-userobj off, or not resolvable (kernel <c>" &lt;%016lx&gt;"</c>).</summary>
    Raw,
    /// <summary><c>" => /usr/lib/x86_64-linux-gnu/libc.so.6[+0xadbd3]"</c>: sym-userobj.</summary>
    UserObj,
    /// <summary><c>" => /usr/lib/.../libc.so.6[+0xadbd3] &lt;00007f2bbd351bd3&gt;"</c>: sym-userobj + sym-addr.</summary>
    UserObjAddress,
    /// <summary><c>" => [LINE TOO BIG]"</c>: the kernel's line buffer overflowed; the rest of the block is lost.</summary>
    LineTooBig,
    /// <summary>
    /// Anything else: a kernel frame (<c>do_syscall_64+0x1fa/0x280</c>, <c>do_syscall_64</c>,
    /// <c>0</c>, <c>[FTRACE TRAMPOLINE]</c>, optionally followed by <c>" &lt;ffffffff821ed69a&gt;"</c>), or
    /// <c>??</c> (a zero entry on 5.2-era kernels).
    /// </summary>
    Symbol,
    /// <summary>trace-cmd's <c>"\t=> 0x7f224749f353"</c> (<c>%ps</c> of an address trace-cmd cannot name); <c>0x0</c> pads to 8.</summary>
    TraceCmdAddress,
}

/// <summary>One parsed frame line; spans view the line.</summary>
public ref struct FrameLine
{
    public FrameForm Form;
    /// <summary>The runtime address, when the line shows one (<see cref="HasAddress"/>).</summary>
    public ulong Address;
    public bool HasAddress;
    /// <summary>For <see cref="FrameForm.UserObj"/>/<see cref="FrameForm.UserObjAddress"/>: the path as the kernel printed it (<c>d_path</c>, <c>\012</c> for newlines, <c> (deleted)</c> kept).</summary>
    public ReadOnlySpan<byte> Path;
    /// <summary>The <c>[+0xOFF]</c> value (ip - vm_start, possibly wrapped).</summary>
    public ulong Offset;
    /// <summary>
    /// For <see cref="FrameForm.Symbol"/>: the symbol text without a trailing <c>" &lt;addr&gt;"</c>.
    /// For the user forms: a trailing <c>" symbol+0xoff"</c> (what <c>rewrite --symbols</c> appends), without its space.
    /// </summary>
    public ReadOnlySpan<byte> Symbol;
    /// <summary>Index in the line where the frame content starts (after <c>"=> "</c>).</summary>
    public int ContentStart;

    /// <summary>The symbol name alone: <see cref="Symbol"/> up to <c>+0x</c> (<c>do_syscall_64+0x1fa/0x280</c> → <c>do_syscall_64</c>).</summary>
    public readonly ReadOnlySpan<byte> SymbolName
    {
        get
        {
            int plus = Symbol.IndexOf("+0x"u8);
            return plus > 0 ? Symbol[..plus] : Symbol;
        }
    }
}

/// <summary>
/// Parses the lines of <c>&lt;user stack trace&gt;</c> / <c>&lt;stack trace&gt;</c> blocks
/// (kernel/trace/trace_output.c <c>trace_user_stack_print</c>, <c>seq_print_user_ip</c>,
/// <c>trace_stack_print</c>) and trace-cmd's <c>"\t=> %ps"</c> frames. The path of a user frame is
/// everything between <c>" => "</c> and the last <c>"[+0x"</c>: paths hold spaces and brackets.
/// </summary>
public static class FrameLineParser
{
    /// <summary>Width of the kernel's <c>%016lx</c>.</summary>
    public const int AddressDigits = 16;

    /// <summary>True when <paramref name="line"/> is a kernel frame line (starts with <c>" =>"</c>).</summary>
    public static bool IsFrameLine(ReadOnlySpan<byte> line) =>
        line.Length >= 3 && line[0] == (byte)' ' && line[1] == (byte)'=' && line[2] == (byte)'>';

    /// <summary>Parses a kernel frame line (<c>" => ..."</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryParse(ReadOnlySpan<byte> line, out FrameLine frame)
    {
        frame = default;
        if (!line.StartsWith(FtraceText.FramePrefix)) return false;
        frame.ContentStart = FtraceText.FramePrefix.Length;
        var content = line[FtraceText.FramePrefix.Length..];
        if (content.SequenceEqual(FtraceText.LineTooBig))
        {
            frame.Form = FrameForm.LineTooBig;
            return true;
        }
        // Raw: " <" 16 hex ">" (the kernel's " <%016lx>" after "=> ").
        if (content.Length >= 4 && content[0] == (byte)' ' && content[1] == (byte)'<' && content[^1] == (byte)'>'
            && Hex.TryParse(content[2..^1], out ulong raw))
        {
            frame.Form = FrameForm.Raw;
            frame.Address = raw;
            frame.HasAddress = true;
            return true;
        }
        ParseContent(content, ref frame);
        return true;
    }

    /// <summary>
    /// Parses a trace-cmd frame: <paramref name="line"/> holds <c>"\t=> "</c> at <paramref name="arrowTab"/>
    /// (the first frame sits on the event line after the event name's padding).
    /// </summary>
    public static bool TryParseTraceCmd(ReadOnlySpan<byte> line, int arrowTab, out FrameLine frame)
    {
        frame = default;
        if ((uint)arrowTab > (uint)line.Length || !line[arrowTab..].StartsWith(FtraceText.TraceCmdFramePrefix)) return false;
        int start = arrowTab + FtraceText.TraceCmdFramePrefix.Length;
        frame.ContentStart = start;
        var content = line[start..];
        if (content.Length > 2 && content[0] == (byte)'0' && content[1] == (byte)'x' && Hex.TryParse(content[2..], out ulong a))
        {
            frame.Form = FrameForm.TraceCmdAddress;
            frame.Address = a;
            frame.HasAddress = true;
            return true;
        }
        ParseContent(content, ref frame);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ParseContent(ReadOnlySpan<byte> content, ref FrameLine frame)
    {
        int bracket = content.LastIndexOf("[+0x"u8);
        if (bracket > 0)
        {
            var after = content[(bracket + 4)..];
            int close = after.IndexOf((byte)']');
            if (close > 0 && Hex.TryParse(after[..close], out ulong off))
            {
                var rest = after[(close + 1)..];
                bool ok = true;
                ReadOnlySpan<byte> symbol = default;
                bool hasAddr = false;
                ulong addr = 0;
                if (rest.Length >= 3 && rest[0] == (byte)' ' && rest[1] == (byte)'<')
                {
                    int gt = rest.IndexOf((byte)'>');
                    if (gt > 2 && Hex.TryParse(rest[2..gt], out addr))
                    {
                        hasAddr = true;
                        rest = rest[(gt + 1)..];
                    }
                    else ok = false;
                }
                if (ok && !rest.IsEmpty)
                {
                    if (rest[0] == (byte)' ' && rest.Length > 1) symbol = rest[1..];
                    else ok = false;
                }
                if (ok)
                {
                    frame.Form = hasAddr ? FrameForm.UserObjAddress : FrameForm.UserObj;
                    frame.Path = content[..bracket];
                    frame.Offset = off;
                    frame.Address = addr;
                    frame.HasAddress = hasAddr;
                    frame.Symbol = symbol;
                    return;
                }
            }
        }
        // A kernel symbol, maybe with sym-addr's " <ffffffff...>".
        frame.Form = FrameForm.Symbol;
        frame.Symbol = content;
        if (content.Length > 3 && content[^1] == (byte)'>')
        {
            int lt = content.LastIndexOf(" <"u8);
            if (lt >= 0 && Hex.TryParse(content[(lt + 2)..^1], out ulong a))
            {
                frame.Address = a;
                frame.HasAddress = true;
                frame.Symbol = content[..lt];
            }
        }
    }
}
