using System.Runtime.CompilerServices;

namespace TraceUnwind.Output.Internal;

/// <summary>
/// Aggregates integer sequences (a stack as frame-name ids, or a report key) with a sample
/// count and a period sum each. A sequence seen before is found by hash and span comparison
/// without allocating; a new one is appended to one growing arena. Memory is bounded by the
/// distinct sequences (the brief's "bounded by distinct stacks").
/// </summary>
internal sealed class StackTable
{
    private int[] _arena = new int[1024];
    private int _arenaLength;
    private int[] _buckets = new int[256];
    private int[] _start = new int[64], _length = new int[64], _hash = new int[64], _next = new int[64];
    private long[] _samples = new long[64];
    private ulong[] _period = new ulong[64];

    public int Count { get; private set; }

    /// <summary>Adds one occurrence of <paramref name="sequence"/> weighing <paramref name="period"/>; returns its entry index.</summary>
    public int Add(ReadOnlySpan<int> sequence, ulong period, long samples = 1)
    {
        int h = Hash(sequence);
        int i = _buckets[h & (_buckets.Length - 1)] - 1;
        for (; i >= 0; i = _next[i])
            if (_hash[i] == h && sequence.SequenceEqual(_arena.AsSpan(_start[i], _length[i]))) break;
        if (i < 0) i = Insert(sequence, h);
        _samples[i] += samples;
        _period[i] = unchecked(_period[i] + period);
        return i;
    }

    public ReadOnlySpan<int> this[int entry] => _arena.AsSpan(_start[entry], _length[entry]);
    public long Samples(int entry) => _samples[entry];
    public ulong Period(int entry) => _period[entry];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ReadOnlySpan<int> sequence)
    {
        var hc = new HashCode();
        hc.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(sequence));
        return hc.ToHashCode();
    }

    private int Insert(ReadOnlySpan<int> sequence, int h)
    {
        int id = Count;
        if (id == _start.Length)
        {
            int n = id * 2;
            Array.Resize(ref _start, n);
            Array.Resize(ref _length, n);
            Array.Resize(ref _hash, n);
            Array.Resize(ref _next, n);
            Array.Resize(ref _samples, n);
            Array.Resize(ref _period, n);
        }
        if (_arena.Length - _arenaLength < sequence.Length)
            Array.Resize(ref _arena, Math.Max(_arena.Length * 2, _arenaLength + sequence.Length));
        sequence.CopyTo(_arena.AsSpan(_arenaLength));
        _start[id] = _arenaLength;
        _length[id] = sequence.Length;
        _arenaLength += sequence.Length;
        _hash[id] = h;
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
        ref int b = ref _buckets[_hash[id] & (_buckets.Length - 1)];
        _next[id] = b - 1;
        b = id + 1;
    }
}
