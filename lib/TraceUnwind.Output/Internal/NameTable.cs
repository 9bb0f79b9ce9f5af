using System.Runtime.CompilerServices;
using System.Text;

namespace TraceUnwind.Output.Internal;

/// <summary>
/// Interns UTF-8 names (frame names, comm parts, dso names) to dense ids 0, 1, 2, ...
/// Looking up a name seen before hashes and compares the span and allocates nothing; a new
/// name costs one array. Memory is bounded by the number of distinct names.
/// Open hashing: <c>_buckets[hash &amp; mask]</c> holds entry index + 1, entries chain by <c>_next</c>.
/// </summary>
internal sealed class NameTable
{
    private int[] _buckets = new int[256];
    private int[] _next = new int[64];
    private int[] _hashes = new int[64];
    private byte[][] _names = new byte[64][];
    private string?[] _strings = new string?[64];

    public int Count { get; private set; }

    /// <summary>The id of <paramref name="utf8"/>, adding it when new.</summary>
    public int Intern(ReadOnlySpan<byte> utf8)
    {
        int h = Hash(utf8);
        for (int i = _buckets[h & (_buckets.Length - 1)] - 1; i >= 0; i = _next[i])
            if (_hashes[i] == h && utf8.SequenceEqual(_names[i])) return i;
        return Add(utf8, h);
    }

    /// <summary>The id of <paramref name="utf8"/> if present, else -1.</summary>
    public int Find(ReadOnlySpan<byte> utf8)
    {
        int h = Hash(utf8);
        for (int i = _buckets[h & (_buckets.Length - 1)] - 1; i >= 0; i = _next[i])
            if (_hashes[i] == h && utf8.SequenceEqual(_names[i])) return i;
        return -1;
    }

    public ReadOnlySpan<byte> this[int id] => _names[id];

    /// <summary>The name as a string (made once per id, on first request).</summary>
    public string GetString(int id) => _strings[id] ??= Encoding.UTF8.GetString(_names[id]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ReadOnlySpan<byte> utf8)
    {
        var hc = new HashCode();
        hc.AddBytes(utf8);
        return hc.ToHashCode();
    }

    private int Add(ReadOnlySpan<byte> utf8, int h)
    {
        int id = Count;
        if (id == _names.Length)
        {
            int n = id * 2;
            Array.Resize(ref _names, n);
            Array.Resize(ref _strings, n);
            Array.Resize(ref _next, n);
            Array.Resize(ref _hashes, n);
        }
        _names[id] = utf8.ToArray();
        _hashes[id] = h;
        Count = id + 1;
        if (Count > _buckets.Length / 2) Rehash(_buckets.Length * 2);
        else Link(id);
        return id;
    }

    private void Link(int id)
    {
        ref int b = ref _buckets[_hashes[id] & (_buckets.Length - 1)];
        _next[id] = b - 1;
        b = id + 1;
    }

    private void Rehash(int size)
    {
        _buckets = new int[size];
        for (int i = 0; i < Count; i++) Link(i);
    }
}
