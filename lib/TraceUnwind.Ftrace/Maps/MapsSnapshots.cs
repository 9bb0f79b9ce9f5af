using System.Runtime.CompilerServices;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Processes;

namespace TraceUnwind.Ftrace.Maps;

/// <summary>
/// When a snapshot was taken, as written after its header (<c>@ 3151.151372</c>): kept as text
/// parts so it can be read in the trace's unit (ns clocks: seconds; counter clocks: the count).
/// </summary>
public readonly record struct SnapshotTime(ulong Whole, ulong Fraction9)
{
    /// <summary>Parses <c>SECONDS[.FRACTION]</c>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> text, out SnapshotTime time)
    {
        time = default;
        if (!TraceTimestamp.TryParseDecimal(text, out ulong whole, out ulong frac, out _)) return false;
        time = new SnapshotTime(whole, frac);
        return true;
    }

    /// <summary>The time in <paramref name="kind"/>'s unit (saturating).</summary>
    public ulong In(TimestampKind kind) => kind == TimestampKind.Counter
        ? Whole
        : TraceTimestamp.TryScale(Whole, 1_000_000_000UL, Fraction9, out ulong ns) ? ns : ulong.MaxValue;
}

/// <summary>
/// Address spaces from <c>/proc/PID/maps</c> snapshots (<c>--maps</c>), chosen by time.
/// Between two execs a process's maps only grow (save munmap/dlclose), and a snapshot taken
/// right after an exec does not yet hold the libraries the loader maps next. So for an event
/// of process P at time T this uses the latest snapshot of P taken before P's next exec after
/// T (execs are the trace's <c>sched_process_exec</c> lines); if there is none, the snapshot
/// nearest to T. A snapshot without a time counts as taken at the end of the trace
/// (<see cref="SetEndOfTrace"/>; +∞ until then). A thread named by a <c>task/TID</c> header
/// belongs to that header's process.
/// <para>
/// Execs must be known before the events they follow: a file input is scanned for them first
/// (<see cref="Rewrite.FtraceRewriter"/> does), a pipe only ahead as far as it has been read.
/// </para>
/// </summary>
public sealed class MapsSnapshots : IMapsSource
{
    private sealed class Snapshot(AddressSpace space, SnapshotTime? time, int order, string origin)
    {
        public readonly AddressSpace Space = space;
        public readonly SnapshotTime? Time = time;
        public readonly int Order = order;
        public readonly string Origin = origin;
    }

    private sealed class ProcessSnapshots
    {
        public readonly List<Snapshot> Snapshots = new();
        // Sorted by (time, ordinal).
        public readonly List<(ulong Time, long Ordinal)> Execs = new();
    }

    private readonly Dictionary<int, ProcessSnapshots> _processes = new();
    private readonly Dictionary<int, int> _threadToProcess = new();
    private ulong? _endNs, _endCounter;
    private int _order;

    // One-entry cache: the frames of one block share the selection.
    private int _lastTgid = int.MinValue;
    private TracePoint _lastWhen;
    private Snapshot? _lastSnap;

    /// <summary>Execs remembered per process (the oldest are forgotten first).</summary>
    public const int MaxExecsPerProcess = 4096;

    public bool IsTimeAware => true;

    public int SnapshotCount => _order;
    public int ProcessCount => _processes.Count;

    /// <summary>Adds one snapshot of process <paramref name="tgid"/> (taken through thread <paramref name="tid"/>).</summary>
    public void Add(int tgid, int tid, SnapshotTime? time, IEnumerable<Mapping> mappings, string origin = "")
    {
        var space = new AddressSpace();
        foreach (var m in mappings) space.Insert(m);
        if (!_processes.TryGetValue(tgid, out var p)) _processes.Add(tgid, p = new ProcessSnapshots());
        p.Snapshots.Add(new Snapshot(space, time, _order++, origin));
        if (tid != tgid && tid > 0) _threadToProcess[tid] = tgid;
        _lastTgid = int.MinValue;
    }

    /// <summary>The time untimed snapshots count as taken: the last timestamp of the trace (file inputs).</summary>
    public void SetEndOfTrace(TraceTimestamp end)
    {
        if (end.Kind == TimestampKind.Counter) _endCounter = end.Value; else _endNs = end.Value;
        _lastTgid = int.MinValue;
    }

    /// <summary>True when a snapshot of process <paramref name="tgid"/> exists.</summary>
    public bool HasProcess(int tgid) => _processes.ContainsKey(tgid);

    /// <summary>Where the snapshot used for this lookup came from (tests, diagnostics); null when none.</summary>
    public string? SelectedOrigin(int tgid, in TracePoint when) => Select(tgid, when)?.Origin;

    public int ProcessOf(int tid)
    {
        if (_threadToProcess.TryGetValue(tid, out int tgid)) return tgid;
        return _processes.ContainsKey(tid) ? tid : -1;
    }

    public Mapping? FindVma(int tgid, in TracePoint when, ulong ip) => Select(tgid, when)?.Space.FindVma(ip);

    public void OnExec(int pid, in TracePoint when)
    {
        if (!_processes.TryGetValue(pid, out var p)) return;   // only processes with snapshots need their execs
        var key = (when.Time.Value, when.Ordinal);
        int i = p.Execs.BinarySearch(key);
        if (i >= 0) return;                                    // seen in the scan before
        p.Execs.Insert(~i, key);
        // Bounded on endless input: a pid that keeps exec'ing (reuse) keeps its latest execs.
        if (p.Execs.Count > MaxExecsPerProcess) p.Execs.RemoveAt(0);
        _lastTgid = int.MinValue;
    }

    public void OnFork(int parentPid, int childPid, in TracePoint when) { }

    public void OnExit(int pid, bool groupDead, in TracePoint when) { }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private Snapshot? Select(int tgid, in TracePoint when)
    {
        if (tgid == _lastTgid && when == _lastWhen) return _lastSnap;
        Snapshot? best = null;
        if (_processes.TryGetValue(tgid, out var p))
        {
            var kind = when.Time.Kind == TimestampKind.Counter ? TimestampKind.Counter : TimestampKind.Nanoseconds;
            ulong end = (kind == TimestampKind.Counter ? _endCounter : _endNs) ?? ulong.MaxValue;
            ulong t = when.Time.Value;
            // The process's next exec after the event.
            int next = p.Execs.BinarySearch((t, when.Ordinal));
            next = next >= 0 ? next + 1 : ~next;
            ulong? limit = next < p.Execs.Count ? p.Execs[next].Time : null;
            ulong bestTime = 0;
            foreach (var s in p.Snapshots)
            {
                ulong st = s.Time?.In(kind) ?? end;
                if (limit is { } l && st >= l) continue;
                if (best is null || st > bestTime || (st == bestTime && s.Order > best.Order)) { best = s; bestTime = st; }
            }
            if (best is null)
            {
                // Every snapshot is after the next exec: the nearest one in time.
                ulong bestDistance = ulong.MaxValue;
                foreach (var s in p.Snapshots)
                {
                    ulong st = s.Time?.In(kind) ?? end;
                    ulong d = st > t ? st - t : t - st;
                    if (best is null || d < bestDistance) { best = s; bestDistance = d; }
                }
            }
        }
        _lastTgid = tgid;
        _lastWhen = when;
        _lastSnap = best;
        return best;
    }
}
