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
public sealed class ExecScanner(IMapsSource maps) : ILineHandler
{
    public long ExecsSeen { get; private set; }

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
}
