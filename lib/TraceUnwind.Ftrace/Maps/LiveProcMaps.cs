using System.Runtime.CompilerServices;
using System.Globalization;
using TraceUnwind.Processes;

namespace TraceUnwind.Ftrace.Maps;

/// <summary>
/// Address spaces of running tasks from <c>/proc/TGID/maps</c>: the same read-time view the
/// kernel's sym-userobj uses, for a trace whose reader did not set that option
/// (<c>cat trace_pipe | traceunwind rewrite</c>). Each process's maps are read once and
/// cached; they are read again when the trace shows an exec of the process, when a fork
/// reuses a pid, or when an address falls in no mapping (a library loaded after the last
/// read), at most once per <see cref="MissRereadInterval"/> per process. Threads are mapped
/// to their process through <c>/proc/TID/status</c> (<c>Tgid:</c>). Both caches are LRU-bounded;
/// processes that exit are dropped.
/// </summary>
public sealed class LiveProcMaps : IMapsSource
{
    private sealed class Entry
    {
        public AddressSpace? Space;   // null: the process is gone or unreadable
        public long ReadAt;
        public bool Stale;
    }

    private readonly string _procRoot;
    private readonly LruCache<int, Entry> _maps;
    private readonly LruCache<int, int> _tgids;
    private readonly TimeProvider _time;
    private readonly long _missRereadTicks;
    private int _lastTgid = -1;
    private Entry? _lastEntry;

    /// <param name="procRoot">The proc mount (<c>/proc</c>); another root lets tests use saved maps.</param>
    /// <param name="capacity">Processes (and threads) whose data is cached.</param>
    /// <param name="missRereadInterval">Least time between two re-reads of a process caused by misses (default 50 ms).</param>
    /// <param name="timeProvider">Clock for that interval.</param>
    public LiveProcMaps(string procRoot = "/proc", int capacity = 1024, TimeSpan? missRereadInterval = null, TimeProvider? timeProvider = null)
    {
        _procRoot = procRoot;
        _maps = new LruCache<int, Entry>(capacity);
        _tgids = new LruCache<int, int>(capacity * 4);
        _time = timeProvider ?? TimeProvider.System;
        MissRereadInterval = missRereadInterval ?? TimeSpan.FromMilliseconds(50);
        _missRereadTicks = (long)(MissRereadInterval.TotalSeconds * _time.TimestampFrequency);
    }

    public TimeSpan MissRereadInterval { get; }

    /// <summary>How many times a maps file was read (tests, diagnostics).</summary>
    public long MapsReads { get; private set; }

    /// <summary>Processes whose maps (or absence) are cached; at most the capacity.</summary>
    public int CachedProcesses => _maps.Count;

    public bool IsTimeAware => false;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int ProcessOf(int tid)
    {
        if (tid <= 0) return -1;
        if (_tgids.TryGet(tid, out int tgid)) return tgid;
        tgid = ReadTgid(tid);
        _tgids.Set(tid, tgid);
        return tgid;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public Mapping? FindVma(int tgid, in TracePoint when, ulong ip)
    {
        if (tgid <= 0) return null;
        Entry? e;
        if (tgid == _lastTgid && _lastEntry is { Stale: false } last)
        {
            // The frames of one block (and usually of the next) belong to the same process.
            e = last;
        }
        else if (!_maps.TryGet(tgid, out e))
        {
            e = new Entry();
            Read(tgid, e, _time.GetTimestamp());
            _maps.Set(tgid, e);
        }
        else if (e.Stale)
        {
            Read(tgid, e, _time.GetTimestamp());
        }
        _lastTgid = tgid;
        _lastEntry = e;
        if (e.Space?.Find(ip) is { } hit) return hit;
        // A miss: the process may have mapped something since it was read.
        long now = _time.GetTimestamp();
        if (now - e.ReadAt >= _missRereadTicks) Read(tgid, e, now);
        return e.Space?.FindVma(ip);
    }

    public void OnExec(int pid, in TracePoint when)
    {
        _lastTgid = -1;
        if (_maps.TryGet(pid, out var e)) e.Stale = true;
        _tgids.Remove(pid);
    }

    public void OnFork(int parentPid, int childPid, in TracePoint when)
    {
        _lastTgid = -1;
        // A new task: anything cached under its pid belonged to an earlier task with that pid.
        _maps.Remove(childPid);
        _tgids.Remove(childPid);
    }

    public void OnExit(int pid, bool groupDead, in TracePoint when)
    {
        _lastTgid = -1;
        _tgids.Remove(pid);
        if (groupDead) _maps.Remove(pid);
    }

    private void Read(int tgid, Entry e, long now)
    {
        MapsReads++;
        e.ReadAt = now;
        e.Stale = false;
        byte[] text;
        string path = Path.Combine(_procRoot, tgid.ToString(CultureInfo.InvariantCulture), "maps");
        if (!File.Exists(path))
        {
            e.Space = null;   // gone (the common case for a trace read after the fact): no exception
            return;
        }
        try
        {
            text = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            e.Space = null;
            return;
        }
        var space = new AddressSpace();
        foreach (var m in ProcMapsParser.ParseAll(text)) space.Insert(m);
        e.Space = space;
    }

    private int ReadTgid(int tid)
    {
        byte[] text;
        string path = Path.Combine(_procRoot, tid.ToString(CultureInfo.InvariantCulture), "status");
        if (!File.Exists(path)) return -1;
        try
        {
            text = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
        var s = text.AsSpan();
        int i = s.IndexOf("\nTgid:"u8);
        if (i < 0) return -1;
        s = s[(i + 6)..];
        int p = 0;
        while (p < s.Length && (s[p] == (byte)' ' || s[p] == (byte)'\t')) p++;
        return Parsing.EventLineParser.TryTakeInt(s, ref p, out int tgid) ? tgid : -1;
    }
}
