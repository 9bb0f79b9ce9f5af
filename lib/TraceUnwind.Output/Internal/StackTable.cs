using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TraceUnwind.Output.Internal;

/// <summary>
/// Aggregates integer sequences (a stack as frame-name ids, or a report key) with a sample
/// count and a period sum each. A sequence seen before is found by hash and span comparison
/// without allocating; a new one is appended to an arena of 1 MiB chunks (nothing is copied as it
/// grows, so the peak is what is stored plus one chunk). Memory is bounded by the distinct
/// sequences (the brief's "bounded by distinct stacks"): per entry its ids (4 bytes each), 32 bytes
/// of entry and 8 of bucket.
/// </summary>
internal sealed class StackTable
{
    private const int ChunkShift = 18, ChunkInts = 1 << ChunkShift; // 1 MiB of ids per chunk

    private struct Entry
    {
        public int Start;   // chunk << ChunkShift | offset
        public int Length;
        public int Next;    // next entry in the bucket's chain, -1 at the end
        public int Hash;
        public long Samples;
        public ulong Period;
    }

    private readonly List<int[]> _chunks = [];
    private int _chunkUsed = ChunkInts; // no chunk yet
    private int[] _buckets = new int[256]; // entry index + 1, 0 = empty
    private Entry[] _entries = new Entry[64];

    public int Count { get; private set; }

    /// <summary>Adds one occurrence of <paramref name="sequence"/> weighing <paramref name="period"/>; returns its entry index.</summary>
    public int Add(ReadOnlySpan<int> sequence, ulong period, long samples = 1)
    {
        int h = Hash(sequence);
        var entries = _entries;
        int i = _buckets[h & (_buckets.Length - 1)] - 1;
        while (i >= 0)
        {
            ref var e = ref entries[i];
            if (e.Hash == h && e.Length == sequence.Length && sequence.SequenceEqual(Ids(e.Start, e.Length))) break;
            i = e.Next;
        }
        if (i < 0) i = Insert(sequence, h);
        ref var hit = ref _entries[i];
        hit.Samples += samples;
        hit.Period = unchecked(hit.Period + period);
        return i;
    }

    public ReadOnlySpan<int> this[int entry]
    {
        get
        {
            ref var e = ref _entries[entry];
            return Ids(e.Start, e.Length);
        }
    }

    public long Samples(int entry) => _entries[entry].Samples;
    public ulong Period(int entry) => _entries[entry].Period;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ReadOnlySpan<int> Ids(int start, int length) => _chunks[start >> ChunkShift].AsSpan(start & (ChunkInts - 1), length);

    /// <summary>A multiply-rotate hash over the ids, two at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ReadOnlySpan<int> sequence)
    {
        const ulong K = 0x9E3779B97F4A7C15UL;
        ulong h = (ulong)sequence.Length * K;
        var pairs = MemoryMarshal.Cast<int, ulong>(sequence);
        foreach (ulong v in pairs) h = BitOperations.RotateLeft((h ^ v) * K, 29);
        if ((sequence.Length & 1) != 0) h = BitOperations.RotateLeft((h ^ (uint)sequence[^1]) * K, 29);
        h ^= h >> 32;
        return (int)h;
    }

    private int Insert(ReadOnlySpan<int> sequence, int h)
    {
        int id = Count;
        if (id == _entries.Length) Array.Resize(ref _entries, id * 2);
        if (ChunkInts - _chunkUsed < sequence.Length)
        {
            // A sequence never straddles chunks (one is far longer than any stack: 8 Ki frames at most).
            _chunks.Add(new int[Math.Max(ChunkInts, sequence.Length)]);
            _chunkUsed = 0;
        }
        int chunk = _chunks.Count - 1;
        sequence.CopyTo(_chunks[chunk].AsSpan(_chunkUsed));
        _entries[id] = new Entry { Start = chunk << ChunkShift | _chunkUsed, Length = sequence.Length, Hash = h, Next = -1 };
        _chunkUsed += sequence.Length;
        Count = id + 1;
        if (Count > _buckets.Length / 2)
        {
            _buckets = new int[_buckets.Length * 2];
            for (int i = 0; i < Count; i++) Link(i);
        }
        else Link(id);
        return id;
    }

    private void Link(int id)
    {
        ref int b = ref _buckets[_entries[id].Hash & (_buckets.Length - 1)];
        _entries[id].Next = b - 1;
        b = id + 1;
    }
}
