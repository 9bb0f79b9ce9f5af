using System.Buffers;

namespace TraceUnwind.Perf;

/// <summary>
/// Puts kernel records in time order the way perf does (tools/perf/util/ordered-events.c,
/// <c>process_finished_round</c> in session.c), so every later stage sees what perf sees.
///
/// perf record drains the per-CPU ring buffers in passes and writes FINISHED_ROUND after a pass
/// that wrote data. Within and across passes records are not globally sorted, but no record is
/// older than everything written two rounds before it. So at each FINISHED_ROUND perf delivers
/// the queued records whose time is at most the largest time queued <i>by the end of the
/// previous round</i>, then remembers the current largest for the next one:
/// <code>
///   round:      |---- N-1 ----|FR|---- N ----|FR|---- N+1 ----|FR|
///   at FR(N):   flush t &lt;= limit(N-1)       limit(N) := max queued so far
///   first FR:   limit is 0: flushes nothing (do_flush returns when the limit is 0)
///   at EOF:     flush everything (OE_FLUSH__FINAL)
/// </code>
/// Records with time 0 or no time at all (synthesized state before FINISHED_INIT, records of an
/// event without sample_id_all) are not queued: perf delivers them at once (<c>-ETIME</c>), which
/// puts the synthesized time-0 records first. Equal times keep arrival order.
///
/// Queued record bytes are copied into 1 MiB chunks; a chunk goes back to the free list when its
/// last record was delivered, so memory is about two rounds of data. A cap
/// (<see cref="MaxQueuedBytes"/>) forces perf's <c>OE_FLUSH__HALF</c> (deliver the older half of
/// the queued time span) so an input without rounds cannot grow memory without limit.
/// </summary>
internal sealed class RoundSorter : IDisposable
{
    private const int ChunkSize = 1 << 20;

    // Entries stay in arrival order until sorted, and the sort is stable, so equal times keep arrival order.
    private struct Entry
    {
        public ulong Time;
        public long FileOffset;
        public int Chunk;
        public int Offset;
        public int Length;
        public int Tag;      // the caller's (the reader: its event's index), given back while delivering
    }

    // Both come from the shared pools and go back in Dispose(): a reader that runs again reuses them.
    private Entry[] _entries = ArrayPool<Entry>.Shared.Rent(4096);
    // The other half of the merge sort, grown by doubling when the queue outgrows it. Kept for the next
    // sorter of the same thread (up to MaxKeptMerge entries) rather than in a shared pool, so what a run
    // allocates does not depend on other readers running at the same time.
    private Entry[] _merge;
    [ThreadStatic] private static Entry[]? t_merge;
    private const int MaxKeptMerge = 1 << 15;
    private int[] _runs = new int[64];
    private int _count;
    private bool _sorted = true;

    private readonly List<byte[]> _chunks = new();
    private readonly List<int> _live = new();
    private readonly Stack<int> _freeChunks = new();
    private int _current = -1;
    private int _currentUsed;
    private long _queuedBytes;

    private ulong _maxTimestamp;
    private ulong _nextFlush;

    public RoundSorter(long maxQueuedBytes)
    {
        MaxQueuedBytes = Math.Max(ChunkSize, maxQueuedBytes);
        _merge = t_merge ?? new Entry[4096];
        t_merge = null;
    }

    public long MaxQueuedBytes { get; }
    public int Count => _count;
    /// <summary>The tag the record being delivered was queued with (valid during a <see cref="Deliver"/> call).</summary>
    public int DeliveringTag { get; private set; } = -1;

    /// <summary>How many times the byte cap forced a half flush.</summary>
    public long ForcedFlushes { get; private set; }

    /// <summary>A delivery callback: (record bytes, file offset). The bytes are valid only during the call.</summary>
    public delegate void Deliver(ReadOnlySpan<byte> record, long fileOffset);

    /// <summary>Queues a copy of <paramref name="record"/> with time <paramref name="time"/> (not 0).</summary>
    public void Queue(ReadOnlySpan<byte> record, ulong time, long fileOffset, Deliver deliver, int tag = -1)
    {
        if (_queuedBytes + record.Length > MaxQueuedBytes && _count > 0)
        {
            ForcedFlushes++;
            FlushHalf(deliver);
        }
        if (_current < 0 || ChunkSize - _currentUsed < record.Length) NewChunk();
        record.CopyTo(_chunks[_current].AsSpan(_currentUsed));
        int at = _currentUsed;
        _currentUsed += record.Length;
        Append(time, fileOffset, _current, at, record.Length, tag);
    }

    /// <summary>
    /// A chunk for the reader to read input into (file mode on a seekable input): records queued from it
    /// with <see cref="QueueInPlace"/> are not copied. The reader holds it until <see cref="ReleaseReadChunk"/>;
    /// it is reused once that is done and its last queued record was delivered.
    /// </summary>
    public byte[] AcquireReadChunk(out int index)
    {
        if (_freeChunks.Count > 0) index = _freeChunks.Pop();
        else
        {
            _chunks.Add(BlockCache.Rent(ChunkSize));
            _live.Add(0);
            index = _chunks.Count - 1;
        }
        _live[index] = 1; // the reader's hold
        return _chunks[index];
    }

    /// <summary>The reader is done with a chunk from <see cref="AcquireReadChunk"/>.</summary>
    public void ReleaseReadChunk(int index) => Release(index, 0);

    /// <summary>
    /// Queues the record at <c>[offset, offset + length)</c> of read chunk <paramref name="chunk"/> (held by the
    /// reader), without copying it; otherwise as <see cref="Queue"/>.
    /// </summary>
    public void QueueInPlace(int chunk, int offset, int length, ulong time, long fileOffset, Deliver deliver, int tag = -1)
    {
        if (_queuedBytes + length > MaxQueuedBytes && _count > 0)
        {
            ForcedFlushes++;
            FlushHalf(deliver);
        }
        Append(time, fileOffset, chunk, offset, length, tag);
    }

    private void Append(ulong time, long fileOffset, int chunk, int offset, int length, int tag)
    {
        if (_count == _entries.Length)
        {
            var bigger = ArrayPool<Entry>.Shared.Rent(_entries.Length * 2);
            Array.Copy(_entries, bigger, _count);
            ArrayPool<Entry>.Shared.Return(_entries);
            _entries = bigger;
        }
        // ordered-events.c queue_event(): the max is reset by the first event of an empty queue.
        if (_count == 0) _maxTimestamp = time;
        else if (time > _maxTimestamp) _maxTimestamp = time;
        if (_count > 0 && _sorted && time < _entries[_count - 1].Time) _sorted = false;
        _entries[_count++] = new Entry { Time = time, FileOffset = fileOffset, Chunk = chunk, Offset = offset, Length = length, Tag = tag };
        _live[chunk]++;
        _queuedBytes += length;
    }

    /// <summary>FINISHED_ROUND: deliver up to the previous round's max, then remember the current max.</summary>
    public void FlushRound(Deliver deliver)
    {
        if (_count == 0) return; // __ordered_events__flush returns early: the limit is not moved either
        if (_nextFlush != 0) FlushUpTo(_nextFlush, deliver);
        _nextFlush = _maxTimestamp;
    }

    /// <summary>End of input: deliver everything.</summary>
    public void FlushAll(Deliver deliver) => FlushUpTo(ulong.MaxValue, deliver);

    private void FlushHalf(Deliver deliver)
    {
        Sort();
        ulong first = _entries[0].Time, last = _entries[_count - 1].Time;
        FlushUpTo(first + (last - first) / 2, deliver);
    }

    /// <summary>
    /// Stable natural merge sort by time: the queue is a sorted remainder followed by what the
    /// latest rounds added, which arrives in long ascending runs (one per CPU buffer drained), so
    /// this is a few linear merges; adjacent runs already in order are just copied.
    /// </summary>
    private void Sort()
    {
        if (_sorted) return;
        int n = _count;
        var e = _entries;
        int runs = 0;
        AddRun(ref runs, 0);
        for (int i = 1; i < n; i++)
            if (e[i].Time < e[i - 1].Time) AddRun(ref runs, i);
        AddRun(ref runs, n);
        runs--; // the last start is the end sentinel
        if (_merge.Length < n) _merge = new Entry[Math.Max(n, _merge.Length * 2)];
        Entry[] src = e, dst = _merge;
        var starts = _runs;
        while (runs > 1)
        {
            int w = 0;
            for (int r = 0; r < runs; r += 2)
            {
                int lo = starts[r], mid = starts[r + 1], hi = r + 2 <= runs ? starts[r + 2] : mid;
                Merge(src, lo, mid, hi, dst);
                starts[w++] = lo;
            }
            starts[w] = n;
            runs = w;
            (src, dst) = (dst, src);
        }
        // The sorted entries are in src; the queue array stays the pooled one.
        if (src != e) Array.Copy(src, e, n);
        _sorted = true;
    }

    private void AddRun(ref int runs, int start)
    {
        if (runs == _runs.Length) Array.Resize(ref _runs, _runs.Length * 2);
        _runs[runs++] = start;
    }

    /// <summary>Merges <c>src[lo..mid)</c> and <c>src[mid..hi)</c> (each sorted) into <c>dst[lo..hi)</c>, left first on ties.</summary>
    private static void Merge(Entry[] src, int lo, int mid, int hi, Entry[] dst)
    {
        if (mid == hi || src[mid - 1].Time <= src[mid].Time)
        {
            Array.Copy(src, lo, dst, lo, hi - lo);
            return;
        }
        int i = lo, j = mid, k = lo;
        while (i < mid && j < hi)
            dst[k++] = src[j].Time < src[i].Time ? src[j++] : src[i++];
        if (i < mid) Array.Copy(src, i, dst, k, mid - i);
        else if (j < hi) Array.Copy(src, j, dst, k, hi - j);
    }

    private void FlushUpTo(ulong limit, Deliver deliver)
    {
        Sort();
        int n = 0;
        // Deliver one at a time and keep the queue consistent before each call, so a handler that
        // throws leaves no record delivered twice.
        while (n < _count && _entries[n].Time <= limit)
        {
            ref Entry e = ref _entries[n];
            n++;
            DeliveringTag = e.Tag;
            try
            {
                deliver(_chunks[e.Chunk].AsSpan(e.Offset, e.Length), e.FileOffset);
            }
            finally
            {
                DeliveringTag = -1;
            }
            Release(e.Chunk, e.Length);
        }
        if (n == 0) return;
        Array.Copy(_entries, n, _entries, 0, _count - n);
        _count -= n;
    }

    private void Release(int chunk, int length)
    {
        _queuedBytes -= length;
        if (--_live[chunk] == 0)
        {
            if (chunk == _current) _currentUsed = 0; // reuse the current chunk from its start
            else _freeChunks.Push(chunk);
        }
    }

    public void Dispose()
    {
        if (_entries.Length == 0) return; // already returned
        ArrayPool<Entry>.Shared.Return(_entries);
        _entries = [];
        if (_merge.Length <= MaxKeptMerge) t_merge = _merge;
        _merge = [];
        foreach (var c in _chunks) BlockCache.Return(c);
        _chunks.Clear();
        _live.Clear();
        _freeChunks.Clear();
        _current = -1;
        _count = 0;
    }

    private void NewChunk()
    {
        if (_current >= 0 && _live[_current] == 0) { _currentUsed = 0; return; }
        if (_freeChunks.Count > 0) _current = _freeChunks.Pop();
        else
        {
            _chunks.Add(BlockCache.Rent(ChunkSize));
            _live.Add(0);
            _current = _chunks.Count - 1;
        }
        _currentUsed = 0;
    }
}
