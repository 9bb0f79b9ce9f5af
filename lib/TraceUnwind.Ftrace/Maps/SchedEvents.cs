using System.Runtime.CompilerServices;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Ftrace.Pipeline;

namespace TraceUnwind.Ftrace.Maps;

/// <summary>
/// Tells an <see cref="IMapsSource"/> about the trace's process events. Text formats (the
/// kernel's and trace-cmd's, default and <c>-R</c>):
/// <code>
/// sched_process_exec: filename=/usr/bin/ls pid=12009 old_pid=12009
/// sched_process_fork: comm=bash pid=12008 child_comm=bash child_pid=12009
/// sched_process_fork: parent_comm=sh parent_pid=13700 child_comm=sh child_pid=13701   (trace-cmd -R)
/// sched_process_exit: comm=ls pid=12009 prio=120 group_dead=true
/// </code>
/// Fields are read from the right (a filename may contain <c>" pid="</c>).
/// </summary>
public static class SchedEvents
{
    /// <summary>Forwards <paramref name="ev"/> if it is an exec, fork or exit; returns true if it was one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool Dispatch(IMapsSource maps, in EventLine ev, in TracePoint when, bool execOnly = false)
    {
        var name = ev.EventName;
        if (!name.StartsWith(FtraceText.SchedProcess)) return false;
        var text = ev.Text;
        if (name.SequenceEqual(FtraceText.SchedProcessExec))
        {
            if (FtraceLine.TryGetIntField(text, " pid="u8, out int pid)) maps.OnExec(pid, when);
            return true;
        }
        if (execOnly) return false;
        if (name.SequenceEqual(FtraceText.SchedProcessFork))
        {
            if (FtraceLine.TryGetIntField(text, " child_pid="u8, out int child))
            {
                if (!FtraceLine.TryGetIntField(text, " pid="u8, out int parent)
                    && !FtraceLine.TryGetIntField(text, " parent_pid="u8, out parent)
                    && !FtraceLine.TryGetIntField(text, "parent_pid="u8, out parent))
                    parent = ev.Pid;
                maps.OnFork(parent, child, when);
            }
            return true;
        }
        if (name.SequenceEqual(FtraceText.SchedProcessExit))
        {
            if (FtraceLine.TryGetIntField(text, " pid="u8, out int pid))
            {
                bool groupDead = text.IndexOf(" group_dead=true"u8) >= 0 || text.IndexOf(" group_dead=1"u8) >= 0;
                maps.OnExit(pid, groupDead, when);
            }
            return true;
        }
        return false;
    }
}

/// <summary>
/// A scanning <see cref="ILineHandler"/> that only feeds <c>sched_process_exec</c> lines to a
/// maps source: the first pass over a file (so snapshots know every exec before the rewrite
/// starts) and the look-ahead over each newly read buffer of a pipe.
/// </summary>
public sealed class ExecScanner(IMapsSource maps) : ILineHandler, ILookahead
{
    public long ExecsSeen { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool OnLine(ReadOnlySpan<byte> line, in LinePosition position, out ReadOnlySpan<byte> replacement)
    {
        replacement = default;
        if (line.IsEmpty || line[0] is (byte)'\t' or (byte)'#' || FrameLineParser.IsFrameLine(line)) return false;
        if (line.IndexOf(FtraceText.SchedProcessExec) < 0) return false;
        if (EventLineParser.TryParse(line, out var ev)
            && SchedEvents.Dispatch(maps, ev, new TracePoint(ev.Timestamp, position.ByteOffset), execOnly: true))
            ExecsSeen++;
        return false;
    }

    public void OnLongLine(in LinePosition position) { }

    public void OnIdle() { }

    /// <summary>
    /// The first pass over a file, at memchr speed: searches whole chunks for
    /// <c>sched_process_exec</c> instead of cutting every line, and parses only the lines it hits.
    /// Ordinals are byte offsets of line starts, as in the line-by-line pass. Returns the execs seen.
    /// </summary>
    public static async Task<long> ScanAsync(Stream input, IMapsSource maps, int maxLineLength, CancellationToken cancellationToken)
    {
        var scanner = new ExecScanner(maps);
        int size = Math.Max(1 << 20, maxLineLength * 2);
        var buffer = new byte[size];
        int filled = 0;          // bytes in buffer
        long bufferOffset = 0;   // input offset of buffer[0]
        while (true)
        {
            int n = await input.ReadAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
            bool final = n == 0;
            filled += n;
            // Only complete lines are searched, unless the input ended.
            int end = final ? filled : buffer.AsSpan(0, filled).LastIndexOf((byte)'\n') + 1;
            if (end == 0 && filled == buffer.Length)
            {
                // One line fills the buffer: longer than any cap, skip it.
                bufferOffset += filled;
                filled = 0;
                continue;
            }
            scanner.ScanChunk(buffer.AsSpan(0, end), bufferOffset);
            buffer.AsSpan(end, filled - end).CopyTo(buffer);
            bufferOffset += end;
            filled -= end;
            if (final) break;
        }
        return scanner.ExecsSeen;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    /// <summary>Look-ahead over a pipe: the same chunk search.</summary>
    public void Scan(ReadOnlySpan<byte> completeLines, long byteOffset) => ScanChunk(completeLines, byteOffset);

    private void ScanChunk(ReadOnlySpan<byte> chunk, long chunkOffset)
    {
        int from = 0;
        while (from < chunk.Length)
        {
            int hit = chunk[from..].IndexOf(FtraceText.SchedProcessExec);
            if (hit < 0) return;
            hit += from;
            int start = chunk[..hit].LastIndexOf((byte)'\n') + 1;
            int nl = chunk[hit..].IndexOf((byte)'\n');
            int end = nl < 0 ? chunk.Length : hit + nl;
            var line = chunk[start..end];
            if (!line.IsEmpty && line[^1] == (byte)'\r') line = line[..^1];
            OnLine(line, new LinePosition(-1, chunkOffset + start), out _);
            from = end + 1;
        }
    }
}
