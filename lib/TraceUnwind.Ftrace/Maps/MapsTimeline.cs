using TraceUnwind.Processes;

namespace TraceUnwind.Ftrace.Maps;

/// <summary>
/// Address spaces as they were at a given time. The contract a perf.data front end fills
/// (MMAP/MMAP2, COMM with the exec flag, FORK, EXIT of a <c>perf record -a -e dummy</c> made
/// alongside the ftrace capture) and <see cref="TimelineMapsSource"/> consumes.
/// </summary>
public interface IMapsTimeline
{
    /// <summary>The thread group of thread <paramref name="tid"/> as the events tell it, or -1.</summary>
    int ProcessOf(int tid);

    /// <summary>
    /// The kernel's <c>find_vma</c> in process <paramref name="tgid"/>'s address space at
    /// <paramref name="timeNs"/> (the timeline's own clock); null when unknown.
    /// </summary>
    Mapping? FindVma(int tgid, ulong timeNs, ulong ip);
}

/// <summary>
/// A generic <see cref="IMapsTimeline"/> built from time-stamped events, in the shape of perf's
/// side-band records:
/// <list type="bullet">
/// <item><see cref="Mmap"/>: PERF_RECORD_MMAP/MMAP2 (pid, time, the mapping);</item>
/// <item><see cref="Exec"/>: PERF_RECORD_COMM with PERF_RECORD_MISC_COMM_EXEC (a new, empty address space);</item>
/// <item><see cref="Fork"/>: PERF_RECORD_FORK (pid == ppid: a thread; else a new process that starts with a copy of its parent's maps at that time);</item>
/// <item><see cref="Exit"/>: PERF_RECORD_EXIT (kept: events may still name the process).</item>
/// </list>
/// Events may arrive in any order. perf records no munmap, so between two execs a process's
/// maps only grow (newer mappings cut older ones they overlap, like <c>AddressSpace.Insert</c>).
/// A lookup at time T uses the maps as of T; when no mapping there contains the address
/// (a library the loader mapped a moment later, a clock offset slightly off), it uses the maps
/// as of the process's next exec, the same rule the snapshot source applies, and only if
/// neither contains it returns <c>find_vma</c> at T (the kernel's answer: wrapped offset or raw).
/// Materialized address spaces are cached per generation (a cursor that moves forward with
/// the queries, and the final state), LRU-bounded.
/// </summary>
public sealed class MapsTimeline : IMapsTimeline
{
    private sealed class Generation
    {
        public ulong Start;
        public Generation? Parent;       // forked from this generation at Start
        public readonly List<(ulong Time, long Seq, Mapping Map)> Mmaps = new();
        // Cache: Cursor holds Mmaps[0..CursorCount) applied on top of the parent's state.
        public AddressSpace? Cursor;
        public int CursorCount;
        public AddressSpace? Final;
    }

    private sealed class Proc
    {
        public readonly List<Generation> Generations = new();
    }

    private readonly Dictionary<int, Proc> _procs = new();
    private readonly Dictionary<int, int> _threads = new();
    private readonly LruCache<Generation, bool> _materialized;
    private long _seq;

    /// <param name="cachedGenerations">How many generations keep materialized address spaces.</param>
    public MapsTimeline(int cachedGenerations = 512)
    {
        _materialized = new LruCache<Generation, bool>(cachedGenerations, static (g, _) =>
        {
            g.Cursor = null;
            g.CursorCount = 0;
            g.Final = null;
        });
    }

    public int ProcessCount => _procs.Count;

    /// <summary>PERF_RECORD_MMAP/MMAP2 of process <paramref name="pid"/> at <paramref name="timeNs"/>.</summary>
    public void Mmap(int pid, ulong timeNs, Mapping mapping)
    {
        if (pid < 0) return;   // kernel maps (pid -1) are not user address spaces
        var g = GenerationAt(GetProc(pid), timeNs, create: true)!;
        var entry = (timeNs, _seq++, mapping);
        int i = g.Mmaps.Count;
        while (i > 0 && g.Mmaps[i - 1].Time > timeNs) i--;
        g.Mmaps.Insert(i, entry);
        // The cursor holds Mmaps[0..CursorCount): an insert behind it invalidates it, one ahead does not.
        if (i < g.CursorCount) { g.Cursor = null; g.CursorCount = 0; }
        g.Final = null;
        InvalidateChildren();
    }

    /// <summary>An exec of process <paramref name="pid"/> at <paramref name="timeNs"/>: its maps start empty.</summary>
    public void Exec(int pid, ulong timeNs)
    {
        var p = GetProc(pid);
        InsertGeneration(p, new Generation { Start = timeNs });
    }

    /// <summary>PERF_RECORD_FORK: <paramref name="pid"/>/<paramref name="tid"/> is the child of <paramref name="ppid"/>/<paramref name="ptid"/>.</summary>
    public void Fork(int pid, int ppid, int tid, int ptid, ulong timeNs)
    {
        if (pid == ppid)
        {
            if (tid != pid) _threads[tid] = pid;
            return;
        }
        Generation? parent = _procs.TryGetValue(ppid, out var pp) ? GenerationAt(pp, timeNs, create: false) : null;
        var p = GetProc(pid);
        InsertGeneration(p, new Generation { Start = timeNs, Parent = parent });
        if (tid != pid) _threads[tid] = pid;
    }

    /// <summary>PERF_RECORD_EXIT. The process stays: later events can still name it.</summary>
    public void Exit(int pid, int tid, ulong timeNs) { }

    /// <summary>Records that thread <paramref name="tid"/> belongs to <paramref name="pid"/> (perf's sample pid/tid pairs).</summary>
    public void AddThread(int pid, int tid)
    {
        if (tid != pid && tid > 0 && pid > 0) _threads[tid] = pid;
    }

    public int ProcessOf(int tid)
    {
        if (_threads.TryGetValue(tid, out int pid)) return pid;
        return _procs.ContainsKey(tid) ? tid : -1;
    }

    public Mapping? FindVma(int tgid, ulong timeNs, ulong ip)
    {
        if (!_procs.TryGetValue(tgid, out var p)) return null;
        var g = GenerationAt(p, timeNs, create: false);
        if (g is null) return null;
        var at = StateAt(g, timeNs);
        if (at.Find(ip) is { } hit) return hit;
        var final = FinalOf(g);
        if (final.Find(ip) is { } later) return later;
        return at.FindVma(ip);
    }

    private Proc GetProc(int pid)
    {
        if (!_procs.TryGetValue(pid, out var p)) _procs.Add(pid, p = new Proc());
        return p;
    }

    private static void InsertGeneration(Proc p, Generation g)
    {
        int i = p.Generations.Count;
        while (i > 0 && p.Generations[i - 1].Start > g.Start) i--;
        p.Generations.Insert(i, g);
        // Mappings of the generation before that are at or after the new start belong to the new one.
        if (i > 0)
        {
            var prev = p.Generations[i - 1];
            for (int k = prev.Mmaps.Count - 1; k >= 0 && prev.Mmaps[k].Time >= g.Start; k--)
            {
                g.Mmaps.Insert(0, prev.Mmaps[k]);
                prev.Mmaps.RemoveAt(k);
                prev.Cursor = null; prev.CursorCount = 0; prev.Final = null;
            }
        }
    }

    /// <summary>The generation live at <paramref name="time"/>: the last one started at or before it (the first if none).</summary>
    private static Generation? GenerationAt(Proc p, ulong time, bool create)
    {
        var gens = p.Generations;
        if (gens.Count == 0)
        {
            if (!create) return null;
            // A process first seen through its mappings (perf synthesizes existing ones at record start).
            var g = new Generation { Start = 0 };
            gens.Add(g);
            return g;
        }
        int lo = 0, hi = gens.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (gens[mid].Start <= time) lo = mid + 1; else hi = mid;
        }
        if (lo > 0) return gens[lo - 1];
        // Before the first known exec or fork of this pid: an image the events have not shown
        // yet. A lookup knows nothing about it (better raw than the later image's answer); a
        // mapping creates it.
        if (!create) return null;
        var first = new Generation { Start = 0 };
        gens.Insert(0, first);
        var second = gens[1];
        for (int k = second.Mmaps.Count - 1; k >= 0; k--)
            if (second.Mmaps[k].Time < second.Start) { first.Mmaps.Insert(0, second.Mmaps[k]); second.Mmaps.RemoveAt(k); }
        return first;
    }

    private AddressSpace StateAt(Generation g, ulong time)
    {
        _materialized.Set(g, true);
        // Mappings with Time <= time.
        int lo = 0, hi = g.Mmaps.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (g.Mmaps[mid].Time <= time) lo = mid + 1; else hi = mid;
        }
        int count = lo;
        if (g.Cursor is null || g.CursorCount > count)
        {
            g.Cursor = g.Parent is null ? new AddressSpace() : StateAt(g.Parent, g.Start).Clone();
            g.CursorCount = 0;
        }
        for (; g.CursorCount < count; g.CursorCount++) g.Cursor.Insert(g.Mmaps[g.CursorCount].Map);
        return g.Cursor;
    }

    private AddressSpace FinalOf(Generation g)
    {
        if (g.Final is not null) return g.Final;
        var s = g.Parent is null ? new AddressSpace() : StateAt(g.Parent, g.Start).Clone();
        foreach (var (_, _, m) in g.Mmaps) s.Insert(m);
        _materialized.Set(g, true);
        return g.Final = s;
    }

    private void InvalidateChildren()
    {
        // Children materialized from a parent state that just changed must rebuild. Rare (events
        // out of order after queries started); clearing every cache keeps it simple and correct.
        foreach (var p in _procs.Values)
            foreach (var g in p.Generations)
                if (g.Parent is not null && (g.Cursor is not null || g.Final is not null))
                {
                    g.Cursor = null; g.CursorCount = 0; g.Final = null;
                }
    }
}

/// <summary>
/// An <see cref="IMapsSource"/> over an <see cref="IMapsTimeline"/> in another clock: a trace
/// timestamp T (ns) is looked up at <c>T - ClockOffsetNs</c> in the timeline
/// (<c>--clock-offset SECONDS</c>: ftrace time minus perf time). Integer trace clocks
/// (counter, uptime, x86-tsc) are passed through unscaled.
/// </summary>
public sealed class TimelineMapsSource(IMapsTimeline timeline, long clockOffsetNs = 0) : IMapsSource
{
    public IMapsTimeline Timeline { get; } = timeline;
    public long ClockOffsetNs { get; } = clockOffsetNs;

    public bool IsTimeAware => true;

    public int ProcessOf(int tid) => Timeline.ProcessOf(tid);

    public Mapping? FindVma(int tgid, in TracePoint when, ulong ip)
    {
        ulong t = when.Time.Value;
        if (when.Time.Kind == Parsing.TimestampKind.Nanoseconds)
            t = ClockOffsetNs >= 0
                ? (t >= (ulong)ClockOffsetNs ? t - (ulong)ClockOffsetNs : 0)
                : (ulong.MaxValue - t >= unchecked((ulong)(-ClockOffsetNs)) ? t + unchecked((ulong)(-ClockOffsetNs)) : ulong.MaxValue);
        return Timeline.FindVma(tgid, t, ip);
    }

    // The timeline has its own exec/fork/exit records.
    public void OnExec(int pid, in TracePoint when) { }
    public void OnFork(int parentPid, int childPid, in TracePoint when) { }
    public void OnExit(int pid, bool groupDead, in TracePoint when) { }
}
