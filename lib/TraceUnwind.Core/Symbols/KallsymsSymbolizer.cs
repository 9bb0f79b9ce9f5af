using System.Text;
using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Text;

namespace TraceUnwind.Symbols;

/// <summary>
/// Kernel symbols from a <c>/proc/kallsyms</c> copy (<c>--kallsyms FILE</c>):
/// <code>
/// ffffffff81000000 T _text
/// ffffffffc0a01000 t nft_do_chain	[nf_tables]
/// </code>
/// A kernel frame is named by the last symbol at or below its address. Only text symbols
/// (t/T/w/W) are used; all-zero addresses (kptr_restrict) are rejected with a clear message.
/// </summary>
public sealed class KallsymsSymbolizer : ISymbolizer
{
    private readonly ulong[] _addresses;
    private readonly string[] _names;

    private KallsymsSymbolizer(ulong[] addresses, string[] names)
    {
        _addresses = addresses;
        _names = names;
    }

    public int Count => _addresses.Length;

    /// <exception cref="TraceFormatException">The file has no usable symbols (for example all addresses are 0).</exception>
    public static KallsymsSymbolizer Load(string path)
    {
        var text = File.ReadAllBytes(path);
        var list = new List<(ulong Addr, string Name)>();
        int lineNo = 0;
        var rest = text.AsSpan();
        bool sawZeroOnly = true;
        while (!rest.IsEmpty)
        {
            lineNo++;
            int nl = rest.IndexOf((byte)'\n');
            var line = nl < 0 ? rest : rest[..nl];
            rest = nl < 0 ? default : rest[(nl + 1)..];
            int s1 = line.IndexOf((byte)' ');
            if (s1 <= 0 || line.Length < s1 + 3 || line[s1 + 2] != (byte)' ') continue;
            if (!Hex.TryParse(line[..s1], out ulong addr)) continue;
            if (addr != 0) sawZeroOnly = false;
            byte type = line[s1 + 1];
            if (type is not ((byte)'t' or (byte)'T' or (byte)'w' or (byte)'W')) continue;
            var name = line[(s1 + 3)..];
            int tab = name.IndexOf((byte)'\t');
            string n = tab < 0 ? Encoding.UTF8.GetString(name) : Encoding.UTF8.GetString(name[..tab]) + " " + Encoding.UTF8.GetString(name[(tab + 1)..]).Trim();
            list.Add((addr, n));
        }
        if (list.Count == 0 || sawZeroOnly)
            throw new TraceFormatException(sawZeroOnly && lineNo > 0
                ? "kallsyms has only zero addresses (read it as root, or set kernel.kptr_restrict=0)"
                : "no text symbols found: not a kallsyms file", new InputPosition(path));
        list.Sort((a, b) => a.Addr.CompareTo(b.Addr));
        return new KallsymsSymbolizer(list.Select(x => x.Addr).ToArray(), list.Select(x => x.Name).ToArray());
    }

    public bool TryResolve(in Frame frame, out SymbolHit hit)
    {
        hit = default;
        if (frame.Kind is not (FrameKind.Kernel or FrameKind.GuestKernel)) return false;
        ulong a = frame.Address;
        int i = Array.BinarySearch(_addresses, a);
        if (i < 0) i = ~i - 1;
        else while (i + 1 < _addresses.Length && _addresses[i + 1] == a) i++;
        if (i < 0) return false;
        hit = new SymbolHit(_names[i], a - _addresses[i]);
        return true;
    }
}
