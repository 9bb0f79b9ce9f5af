using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Processes;

namespace TraceUnwind.Ftrace.Maps;

/// <summary>
/// A moment in the trace: the event's timestamp (in the trace clock's unit) and, to order
/// events with equal timestamps (µs resolution), the byte offset of its line in the input
/// (trace and trace_pipe print events in time order, so file order breaks ties).
/// </summary>
public readonly record struct TracePoint(TraceTimestamp Time, long Ordinal)
{
    public static TracePoint Unknown => new(default, -1);

    /// <summary>Orders by time, then by position in the input.</summary>
    public int CompareTo(ulong time, long ordinal)
    {
        int c = Time.Value.CompareTo(time);
        return c != 0 ? c : Ordinal.CompareTo(ordinal);
    }
}

/// <summary>
/// Where address spaces come from when user frames are rewritten or sampled: live
/// <c>/proc</c> (<see cref="LiveProcMaps"/>), maps snapshots (<see cref="MapsSnapshots"/>), or a
/// timeline of mmap/exec/fork/exit events (<see cref="TimelineMapsSource"/> over an
/// <see cref="IMapsTimeline"/>, e.g. from a perf.data recorded alongside).
/// Implementations are used from one thread.
/// </summary>
public interface IMapsSource
{
    /// <summary>
    /// True when answers describe the address space at the event's time (snapshots, perf
    /// events), false when they describe it now (live /proc, like the kernel's own sym-userobj
    /// lookup at read time). A time-aware source may correct lines the kernel already resolved.
    /// </summary>
    bool IsTimeAware { get; }

    /// <summary>The thread group of thread <paramref name="tid"/>, or -1 when this source cannot tell.</summary>
    int ProcessOf(int tid);

    /// <summary>
    /// The kernel's <c>find_vma(mm, ip)</c> (first mapping whose end is above <paramref name="ip"/>)
    /// in process <paramref name="tgid"/>'s address space at <paramref name="when"/>; null when
    /// there is none (process unknown, or ip above every mapping).
    /// </summary>
    Mapping? FindVma(int tgid, in TracePoint when, ulong ip);

    /// <summary>The trace shows <c>sched_process_exec</c> of <paramref name="pid"/> (the new thread group leader).</summary>
    void OnExec(int pid, in TracePoint when);

    /// <summary>The trace shows <c>sched_process_fork</c>: <paramref name="childPid"/> is a new task.</summary>
    void OnFork(int parentPid, int childPid, in TracePoint when);

    /// <summary>The trace shows <c>sched_process_exit</c> of task <paramref name="pid"/>.</summary>
    void OnExit(int pid, bool groupDead, in TracePoint when);
}
