using System.Runtime.CompilerServices;
namespace TraceUnwind.Ftrace.Parsing;

/// <summary>What a line of ftrace or trace-cmd text is, from its first bytes (no event parsing).</summary>
public enum LineKind : byte
{
    /// <summary>An empty line.</summary>
    Empty,
    /// <summary>The <c>#</c> header of <c>trace</c> (3.2 of the reference notes).</summary>
    Header,
    /// <summary><c>##### CPU N buffer started ####</c> (<c>trace</c> with annotate, after a buffer wrapped).</summary>
    BufferStarted,
    /// <summary><c>CPU:N [LOST M EVENTS]</c> (kernel/trace/trace.c <c>print_trace_line</c>).</summary>
    LostEvents,
    /// <summary>A kernel stack-block line, <c>" => ..."</c>.</summary>
    Frame,
    /// <summary>A trace-cmd continuation frame, <c>"\t=> ..."</c>.</summary>
    TraceCmdFrame,
    /// <summary><c>cpus=N</c>, the first line of <c>trace-cmd report</c>.</summary>
    TraceCmdCpus,
    /// <summary>Anything else: an event line, or text this parser does not know (passed through).</summary>
    Text,
}

/// <summary>Line classification and the small non-event lines.</summary>
public static class FtraceLine
{
    /// <summary>Classifies by the first bytes; event lines and unknown text are both <see cref="LineKind.Text"/>.</summary>
    public static LineKind Classify(ReadOnlySpan<byte> line)
    {
        if (line.IsEmpty) return LineKind.Empty;
        switch (line[0])
        {
            case (byte)' ':
                return FrameLineParser.IsFrameLine(line) ? LineKind.Frame : LineKind.Text;
            case (byte)'\t':
                return line.StartsWith(FtraceText.TraceCmdFramePrefix) ? LineKind.TraceCmdFrame : LineKind.Text;
            case (byte)'#':
                return line.StartsWith("##### CPU "u8) ? LineKind.BufferStarted : LineKind.Header;
            case (byte)'C':
                return TryParseLostEvents(line, out _, out _) ? LineKind.LostEvents : LineKind.Text;
            case (byte)'c':
                return line.StartsWith("cpus="u8) && EventLineParser.TryParseInt(line[5..], out _) ? LineKind.TraceCmdCpus : LineKind.Text;
            default:
                return LineKind.Text;
        }
    }

    /// <summary>Parses <c>CPU:%d [LOST %lu EVENTS]</c>.</summary>
    public static bool TryParseLostEvents(ReadOnlySpan<byte> line, out int cpu, out ulong lost)
    {
        cpu = -1;
        lost = 0;
        if (!line.StartsWith("CPU:"u8)) return false;
        int p = 4;
        if (!EventLineParser.TryTakeInt(line, ref p, out cpu)) return false;
        var rest = line[p..];
        if (!rest.StartsWith(" [LOST "u8) || !rest.EndsWith(" EVENTS]"u8) || rest.Length <= 15) return false;
        return EventLineParser.TryParseUInt64(rest[7..^8], out lost);
    }

    /// <summary>
    /// The value of <c>NAME=</c> in an event's text, taken from the right so that a filename with
    /// <c>" pid="</c> in it does not fool it (<c>sched_process_exec: filename=/x pid=12009 old_pid=12009</c>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryGetIntField(ReadOnlySpan<byte> text, ReadOnlySpan<byte> spaceNameEquals, out int value)
    {
        value = -1;
        int i = text.LastIndexOf(spaceNameEquals);
        if (i < 0) return false;
        int p = i + spaceNameEquals.Length;
        return EventLineParser.TryTakeInt(text, ref p, out value) && (p == text.Length || text[p] == (byte)' ');
    }
}
