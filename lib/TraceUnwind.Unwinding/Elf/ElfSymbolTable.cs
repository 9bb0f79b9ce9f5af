using System.Text;
using TraceUnwind.Buffers;

namespace TraceUnwind.Unwinding.Elf;

/// <summary>
/// Function symbols of one ELF file, sorted by address, for "which function holds this address"
/// lookups (binary search, no allocation once a name has been asked for). Taken from
/// <c>.symtab</c> when present, else <c>.dynsym</c>, the way perf's <c>dso__load_sym</c> chooses.
/// Kept: STT_FUNC and STT_GNU_IFUNC symbols that are defined (st_shndx != SHN_UNDEF) with a
/// non-zero value. A symbol with st_size 0 ends where the next one starts (perf's
/// <c>symbols__fixup_end</c>). Where several symbols share an address, the global one wins over
/// a weak one over a local one, then the one with fewer leading underscores (perf's <c>choose_best_symbol</c>).
/// </summary>
public sealed class ElfSymbolTable
{
    /// <summary>Most symbols read (a cap against a section size that lies).</summary>
    public const int MaxSymbols = 16_000_000;

    private readonly ulong[] _start;
    private readonly ulong[] _end;
    private readonly uint[] _nameOffset;
    private readonly byte[] _strtab;
    private readonly string?[] _names;

    private ElfSymbolTable(ulong[] start, ulong[] end, uint[] nameOffset, byte[] strtab, string sectionName)
    {
        _start = start;
        _end = end;
        _nameOffset = nameOffset;
        _strtab = strtab;
        _names = new string?[start.Length];
        SectionName = sectionName;
    }

    /// <summary><c>.symtab</c> or <c>.dynsym</c>.</summary>
    public string SectionName { get; }
    public int Count => _start.Length;

    internal static ElfSymbolTable? TryCreate(ElfFile elf)
    {
        ElfSectionHeader? table = null;
        foreach (var s in elf.Sections)
            if (s.Type == ElfConstants.ShtSymtab) { table = s; break; }
        if (table is null)
            foreach (var s in elf.Sections)
                if (s.Type == ElfConstants.ShtDynsym) { table = s; break; }
        if (table is not { } t || t.Link >= elf.Sections.Count) return null;
        var strSection = elf.Sections[(int)t.Link];
        if (strSection.Type != ElfConstants.ShtStrtab) return null;
        ReadOnlySpan<byte> symData, strData;
        try
        {
            symData = elf.GetSectionData(t);
            strData = elf.GetSectionData(strSection);
        }
        catch (Diagnostics.TraceFormatException) { return null; }
        // A symbol without a size ends at the next symbol, but never past the end of its own section
        // (a size-0 _fini, last in .fini, would otherwise claim .rodata and everything above).
        var sectionEnds = new ulong[elf.Sections.Count];
        for (int i = 0; i < sectionEnds.Length; i++)
        {
            var sec = elf.Sections[i];
            sectionEnds[i] = sec.Size > ulong.MaxValue - sec.Address ? ulong.MaxValue : sec.Address + sec.Size;
        }
        return elf.IsBigEndian
            ? Build<BigEndian>(symData, strData, elf.Is64, t.Name, sectionEnds)
            : Build<LittleEndian>(symData, strData, elf.Is64, t.Name, sectionEnds);
    }

    private readonly record struct Raw(ulong Value, ulong Size, uint Name, int Rank, ulong SectionEnd);

    private static ElfSymbolTable? Build<T>(ReadOnlySpan<byte> symData, ReadOnlySpan<byte> strData, bool is64, string sectionName, ulong[] sectionEnds)
        where T : struct, IByteOrder
    {
        int entSize = is64 ? 24 : 16;
        int count = Math.Min(symData.Length / entSize, MaxSymbols);
        var list = new List<Raw>(Math.Min(count, 65536));
        var c = new SpanCursor<T>(symData);
        for (int i = 1; i < count; i++) // symbol 0 is the null symbol
        {
            c.Position = i * entSize;
            uint name; byte info; ushort shndx; ulong value, size;
            if (is64)
            {
                // st_name:u32 st_info:u8 st_other:u8 st_shndx:u16 st_value:u64 st_size:u64
                name = c.ReadUInt32(); info = c.ReadByte(); c.ReadByte(); shndx = c.ReadUInt16();
                value = c.ReadUInt64(); size = c.ReadUInt64();
            }
            else
            {
                // st_name:u32 st_value:u32 st_size:u32 st_info:u8 st_other:u8 st_shndx:u16
                name = c.ReadUInt32(); value = c.ReadUInt32(); size = c.ReadUInt32();
                info = c.ReadByte(); c.ReadByte(); shndx = c.ReadUInt16();
            }
            byte type = (byte)(info & 0xf), bind = (byte)(info >> 4);
            if (type is not (ElfConstants.SttFunc or ElfConstants.SttGnuIfunc)) continue;
            if (shndx == ElfConstants.ShnUndef || value == 0) continue;
            if (name >= (uint)strData.Length) continue;
            // STB_GLOBAL 1 > STB_WEAK 2 > STB_LOCAL 0.
            int rank = (bind == 1 ? 2 : bind == 2 ? 1 : 0) * 16 - Math.Min(LeadingUnderscores(strData, name), 15);
            // SHN_ABS and other reserved indexes (>= 0xff00) have no section to bound them.
            ulong sectionEnd = shndx < sectionEnds.Length && sectionEnds[shndx] > value ? sectionEnds[shndx] : ulong.MaxValue;
            list.Add(new Raw(value, size, name, rank, sectionEnd));
        }
        if (list.Count == 0) return null;
        list.Sort((a, b) => a.Value != b.Value ? a.Value.CompareTo(b.Value) : b.Rank.CompareTo(a.Rank));
        // One entry per address: the best-ranked one (first after the sort).
        int n = 0;
        for (int i = 0; i < list.Count; i++)
            if (n == 0 || list[i].Value != list[n - 1].Value) list[n++] = list[i];
            else if (list[n - 1].Size == 0 && list[i].Size != 0) list[n - 1] = list[n - 1] with { Size = list[i].Size };
        var start = new ulong[n];
        var end = new ulong[n];
        var names = new uint[n];
        for (int i = 0; i < n; i++)
        {
            start[i] = list[i].Value;
            names[i] = list[i].Name;
            ulong next = i + 1 < n ? list[i + 1].Value : ulong.MaxValue;
            end[i] = list[i].Size != 0 ? list[i].Value + list[i].Size : Math.Min(next, list[i].SectionEnd);
        }
        return new ElfSymbolTable(start, end, names, strData.ToArray(), sectionName);
    }

    private static int LeadingUnderscores(ReadOnlySpan<byte> strtab, uint at)
    {
        int k = 0;
        while (at + k < strtab.Length && strtab[(int)at + k] == (byte)'_') k++;
        return k;
    }

    /// <summary>Finds the function holding virtual address <paramref name="address"/>.</summary>
    public bool TryFind(ulong address, out int index)
    {
        int lo = 0, hi = _start.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_start[mid] <= address) lo = mid + 1; else hi = mid;
        }
        index = lo - 1;
        return index >= 0 && address < _end[index];
    }

    public ulong StartOf(int index) => _start[index];
    public ulong EndOf(int index) => _end[index];

    /// <summary>The symbol's name, decoded once and kept.</summary>
    public string NameOf(int index)
    {
        var n = _names[index];
        if (n is not null) return n;
        var rest = _strtab.AsSpan((int)_nameOffset[index]);
        int nul = rest.IndexOf((byte)0);
        n = Encoding.UTF8.GetString(nul < 0 ? rest : rest[..nul]);
        _names[index] = n;
        return n;
    }

    /// <summary>Finds the function holding <paramref name="address"/> and returns its name and the offset into it.</summary>
    public bool TryResolve(ulong address, out string name, out ulong offset)
    {
        if (TryFind(address, out int i))
        {
            name = NameOf(i);
            offset = address - _start[i];
            return true;
        }
        name = "";
        offset = 0;
        return false;
    }
}
