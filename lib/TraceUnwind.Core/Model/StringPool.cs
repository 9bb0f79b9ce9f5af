using System.Runtime.InteropServices;
using System.Text;

namespace TraceUnwind.Model;

/// <summary>
/// Interns short UTF-8 strings (comms, paths, event names) so a hot path that sees the same
/// bytes again gets the same string without allocating. Bounded: past <see cref="Capacity"/>
/// distinct strings new ones are returned uninterned, so an endless stream cannot grow it
/// without limit.
/// </summary>
public sealed class StringPool
{
    private readonly Dictionary<int, Entry> _byHash = new();

    private sealed class Entry(byte[] key, string value)
    {
        public readonly byte[] Key = key;
        public readonly string Value = value;
        public Entry? Next;
    }

    public StringPool(int capacity = 1 << 16) => Capacity = capacity;

    public int Capacity { get; }
    public int Count { get; private set; }

    /// <summary>The string for <paramref name="utf8"/>; no allocation when it was seen before.</summary>
    public string Intern(ReadOnlySpan<byte> utf8)
    {
        var hc = new HashCode();
        hc.AddBytes(utf8);
        int h = hc.ToHashCode();
        ref Entry? head = ref CollectionsMarshal.GetValueRefOrAddDefault(_byHash, h, out _);
        for (var e = head; e is not null; e = e.Next)
            if (utf8.SequenceEqual(e.Key)) return e.Value;
        string s = Encoding.UTF8.GetString(utf8);
        if (Count >= Capacity)
        {
            if (head is null) _byHash.Remove(h);
            return s;
        }
        head = new Entry(utf8.ToArray(), s) { Next = head };
        Count++;
        return s;
    }

    /// <summary>Interns a NUL-terminated field (perf's comm[], filename[]): up to the first NUL.</summary>
    public string InternCString(ReadOnlySpan<byte> field)
    {
        int nul = field.IndexOf((byte)0);
        return Intern(nul < 0 ? field : field[..nul]);
    }
}
