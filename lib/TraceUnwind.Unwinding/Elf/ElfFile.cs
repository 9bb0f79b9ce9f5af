using System.Text;
using TraceUnwind.Buffers;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Unwinding.Elf;

/// <summary>Where an SFrame section lives in an ELF file and how long its data is.</summary>
/// <param name="Address">Virtual address of the first byte (the SFrame header).</param>
/// <param name="FileOffset">File offset of the first byte.</param>
/// <param name="Length">Bytes the SFrame header says the data spans (<c>hdr_size + sfh_freoff + sfh_fre_len</c>), at most <see cref="ContainerSize"/>.</param>
/// <param name="ContainerSize">Size of the section or segment that holds it (ld 2.46 makes PT_GNU_SFRAME larger than the section).</param>
/// <param name="FromSegment">True when found through <c>PT_GNU_SFRAME</c>, false when through the <c>.sframe</c> section header.</param>
/// <param name="SectionType">sh_type of the section (0 when found through the segment and no section matched).</param>
public readonly record struct ElfSFrameLocation(ulong Address, long FileOffset, int Length, ulong ContainerSize, bool FromSegment, uint SectionType);

/// <summary>
/// Read-only lookups in an ELF file (32/64-bit, little or big endian): headers, sections, the
/// build id, <c>.gnu_debuglink</c>, <c>.sframe</c> / <c>PT_GNU_SFRAME</c>, symbols. No object model:
/// the file bytes stay as they are and every lookup reads them with bounds checks. Header tables
/// are decoded once on load with byte order chosen once (a struct <see cref="IByteOrder"/> type
/// argument, LibObjectFile's ElfDecoderDirect/Swap). Counts taken from the file are checked
/// against the file size and capped (Microsoft.FileFormats' "reasonable" rules) before they size anything.
/// </summary>
public sealed class ElfFile
{
    /// <summary>Most program headers accepted (Microsoft.FileFormats IsProgramHeaderCountReasonable).</summary>
    public const int MaxProgramHeaders = 30_000;
    /// <summary>Most section headers accepted (e_shnum can exceed 0xff00 only through section 0's sh_size).</summary>
    public const int MaxSections = 200_000;
    /// <summary>Files larger than this are refused (everything is read into one array).</summary>
    public const long MaxFileSize = int.MaxValue;

    private readonly byte[] _data;
    private readonly ElfProgramHeader[] _programHeaders;
    private readonly ElfSectionHeader[] _sections;
    private ElfSymbolTable? _symbols;
    private bool _symbolsLoaded;
    private byte[]? _buildId;
    private bool _buildIdLoaded;

    private ElfFile(byte[] data, string? source, ElfHeader header, ElfProgramHeader[] phdrs, ElfSectionHeader[] sections)
    {
        _data = data;
        Source = source;
        Header = header;
        _programHeaders = phdrs;
        _sections = sections;
    }

    /// <summary>The path or name the file was read from (used in error positions).</summary>
    public string? Source { get; }
    public ElfHeader Header { get; }
    public bool Is64 => Header.Is64;
    public bool IsBigEndian => Header.IsBigEndian;
    public ushort Machine => Header.Machine;

    /// <summary>The whole file.</summary>
    public ReadOnlySpan<byte> Data => _data;
    public long Length => _data.Length;

    public IReadOnlyList<ElfProgramHeader> ProgramHeaders => _programHeaders;
    public IReadOnlyList<ElfSectionHeader> Sections => _sections;

    /// <summary>The architecture from <c>e_machine</c> (64-bit only; anything else is Unknown).</summary>
    public UnwindArch Arch => !Is64 ? UnwindArch.Unknown : Machine switch
    {
        ElfConstants.EmX86_64 => UnwindArch.X86_64,
        ElfConstants.EmAArch64 => UnwindArch.Arm64,
        ElfConstants.EmS390 => UnwindArch.S390x,
        _ => UnwindArch.Unknown,
    };

    /// <summary>Reads and parses <paramref name="path"/>.</summary>
    /// <exception cref="TraceFormatException">Not an ELF file, or its headers do not fit the file.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static ElfFile Load(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        long len = fs.Length;
        if (len > MaxFileSize)
            throw new TraceFormatException($"file is {len} bytes; ELF files above {MaxFileSize} bytes are not read", new InputPosition(path));
        var data = new byte[len];
        fs.ReadExactly(data);
        return Parse(data, path);
    }

    /// <summary>Parses an ELF image held in memory (the array is kept, not copied).</summary>
    /// <exception cref="TraceFormatException">Not an ELF file, or its headers do not fit the data.</exception>
    public static ElfFile Parse(byte[] data, string? source = null)
    {
        try
        {
            // e_ident: 7f 'E' 'L' 'F' class data version osabi ...
            if (data.Length < 16 || data[0] != 0x7f || data[1] != (byte)'E' || data[2] != (byte)'L' || data[3] != (byte)'F')
                ThrowHelper.Format("not an ELF file (no \\x7fELF magic)", 0);
            byte cls = data[4], enc = data[5];
            if (cls is not (ElfConstants.ElfClass32 or ElfConstants.ElfClass64))
                ThrowHelper.Format($"unknown ELF class {cls} in e_ident[EI_CLASS]", 4);
            if (enc is not (ElfConstants.ElfData2Lsb or ElfConstants.ElfData2Msb))
                ThrowHelper.Format($"unknown ELF data encoding {enc} in e_ident[EI_DATA]", 5);
            return enc == ElfConstants.ElfData2Msb
                ? ParseCore<BigEndian>(data, source, cls == ElfConstants.ElfClass64)
                : ParseCore<LittleEndian>(data, source, cls == ElfConstants.ElfClass64);
        }
        catch (TraceFormatException e) { throw e.WithSource(source); }
    }

    private static ElfFile ParseCore<T>(byte[] data, string? source, bool is64) where T : struct, IByteOrder
    {
        var c = new SpanCursor<T>(data);
        int ehsize = is64 ? 64 : 52;
        if (data.Length < ehsize) ThrowHelper.OutOfBounds(0, ehsize, data.Length);
        c.Position = 16;
        ushort type = c.ReadUInt16();
        ushort machine = c.ReadUInt16();
        c.ReadUInt32(); // e_version
        ulong entry = is64 ? c.ReadUInt64() : c.ReadUInt32();
        ulong phoff = is64 ? c.ReadUInt64() : c.ReadUInt32();
        ulong shoff = is64 ? c.ReadUInt64() : c.ReadUInt32();
        uint flags = c.ReadUInt32();
        c.ReadUInt16(); // e_ehsize
        ushort phentsize = c.ReadUInt16();
        uint phnum = c.ReadUInt16();
        ushort shentsize = c.ReadUInt16();
        uint shnum = c.ReadUInt16();
        uint shstrndx = c.ReadUInt16();

        int wantSh = is64 ? 64 : 40, wantPh = is64 ? 56 : 32;

        // Section 0 carries the real counts when they overflow 16 bits (gABI: e_shnum == 0 with
        // e_shoff != 0 -> sh_size of section 0; e_phnum == PN_XNUM -> sh_info; e_shstrndx ==
        // SHN_XINDEX -> sh_link).
        if (shoff != 0 && (shnum == 0 || phnum == ElfConstants.PnXNum || shstrndx == ElfConstants.ShnXIndex))
        {
            if (shentsize != wantSh) ThrowHelper.Format($"e_shentsize is {shentsize}, expected {wantSh}", 0x2e + (is64 ? 12 : 0));
            CheckTable(data.Length, shoff, 1, (uint)wantSh, "section header 0");
            var s0 = ReadSection<T>(data, (int)shoff, is64, 0, "");
            if (shnum == 0) shnum = s0.Size > MaxSections ? uint.MaxValue : (uint)s0.Size;
            if (phnum == ElfConstants.PnXNum) phnum = s0.Info;
            if (shstrndx == ElfConstants.ShnXIndex) shstrndx = s0.Link;
        }
        if (shoff == 0) shnum = 0;
        if (phoff == 0) phnum = 0;

        if (phnum > MaxProgramHeaders)
            ThrowHelper.Format($"{phnum} program headers: more than the {MaxProgramHeaders} accepted", is64 ? 0x38 : 0x2c);
        if (shnum > MaxSections)
            ThrowHelper.Format($"{shnum} section headers: more than the {MaxSections} accepted", is64 ? 0x3c : 0x30);
        if (phnum > 0 && phentsize != wantPh)
            ThrowHelper.Format($"e_phentsize is {phentsize}, expected {wantPh}", is64 ? 0x36 : 0x2a);
        if (shnum > 0 && shentsize != wantSh)
            ThrowHelper.Format($"e_shentsize is {shentsize}, expected {wantSh}", is64 ? 0x3a : 0x2e);

        var header = new ElfHeader(is64, T.IsBigEndian, data[7], type, machine, entry, phoff, shoff, flags,
            phentsize, phnum, shentsize, shnum, shstrndx);

        var phdrs = new ElfProgramHeader[phnum];
        if (phnum > 0)
        {
            CheckTable(data.Length, phoff, phnum, (uint)wantPh, "program header table");
            var p = new SpanCursor<T>(data);
            for (int i = 0; i < phdrs.Length; i++)
            {
                p.Position = (int)phoff + i * wantPh;
                if (is64)
                {
                    // p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz p_align
                    uint pt = p.ReadUInt32(), pf = p.ReadUInt32();
                    phdrs[i] = new ElfProgramHeader(pt, pf, p.ReadUInt64(), p.ReadUInt64(), p.ReadUInt64(), p.ReadUInt64(), p.ReadUInt64(), p.ReadUInt64());
                }
                else
                {
                    // p_type p_offset p_vaddr p_paddr p_filesz p_memsz p_flags p_align
                    uint pt = p.ReadUInt32();
                    uint off = p.ReadUInt32(), va = p.ReadUInt32(), pa = p.ReadUInt32(), fsz = p.ReadUInt32(), msz = p.ReadUInt32();
                    uint pf = p.ReadUInt32(), al = p.ReadUInt32();
                    phdrs[i] = new ElfProgramHeader(pt, pf, off, va, pa, fsz, msz, al);
                }
            }
        }

        var sections = new ElfSectionHeader[shnum];
        if (shnum > 0)
        {
            CheckTable(data.Length, shoff, shnum, (uint)wantSh, "section header table");
            for (int i = 0; i < sections.Length; i++)
                sections[i] = ReadSection<T>(data, (int)shoff + i * wantSh, is64, i, "");
            // Names come from the section-name string table; a bad index leaves names empty
            // rather than refusing the file (the headers themselves are fine).
            if (shstrndx < shnum && shstrndx != 0 && sections[shstrndx].HasFileData
                && FitsIn(data.Length, sections[shstrndx].Offset, sections[shstrndx].Size))
            {
                var strtab = new ReadOnlySpan<byte>(data, (int)sections[shstrndx].Offset, (int)sections[shstrndx].Size);
                for (int i = 0; i < sections.Length; i++)
                    sections[i] = sections[i] with { Name = ReadCString(strtab, sections[i].NameOffset) };
            }
        }
        return new ElfFile(data, source, header, phdrs, sections);
    }

    private static ElfSectionHeader ReadSection<T>(byte[] data, int at, bool is64, int index, string name) where T : struct, IByteOrder
    {
        var s = new SpanCursor<T>(data) { Position = at };
        uint nameOff = s.ReadUInt32(), shType = s.ReadUInt32();
        if (is64)
        {
            // sh_name sh_type sh_flags sh_addr sh_offset sh_size sh_link sh_info sh_addralign sh_entsize
            ulong fl = s.ReadUInt64(), addr = s.ReadUInt64(), off = s.ReadUInt64(), size = s.ReadUInt64();
            uint link = s.ReadUInt32(), info = s.ReadUInt32();
            return new ElfSectionHeader(index, name, nameOff, shType, fl, addr, off, size, link, info, s.ReadUInt64(), s.ReadUInt64());
        }
        else
        {
            uint fl = s.ReadUInt32(), addr = s.ReadUInt32(), off = s.ReadUInt32(), size = s.ReadUInt32();
            uint link = s.ReadUInt32(), info = s.ReadUInt32();
            return new ElfSectionHeader(index, name, nameOff, shType, fl, addr, off, size, link, info, s.ReadUInt32(), s.ReadUInt32());
        }
    }

    /// <summary>Checks <c>[offset, offset + count * entrySize)</c> lies in the file; all in 64 bits, so nothing wraps (count and size are at most 32 bits each).</summary>
    private static void CheckTable(long fileLength, ulong offset, uint count, uint entrySize, string what)
    {
        ulong bytes = (ulong)count * entrySize;
        if (offset > (ulong)fileLength || bytes > (ulong)fileLength - offset)
            ThrowHelper.Format($"{what} at 0x{offset:x} ({count} x {entrySize} bytes) runs past the end of the file ({fileLength} bytes)",
                (long)Math.Min(offset, (ulong)fileLength));
    }

    private static bool FitsIn(long fileLength, ulong offset, ulong size) =>
        offset <= (ulong)fileLength && size <= (ulong)fileLength - offset;

    internal static string ReadCString(ReadOnlySpan<byte> table, uint offset)
    {
        if (offset >= (uint)table.Length) return "";
        var rest = table.Slice((int)offset);
        int nul = rest.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? rest : rest[..nul]);
    }

    /// <summary>The first section named <paramref name="name"/>, if any.</summary>
    public bool TryGetSection(string name, out ElfSectionHeader section)
    {
        foreach (var s in _sections)
            if (s.Name == name) { section = s; return true; }
        section = default;
        return false;
    }

    /// <summary>The file bytes of <paramref name="section"/> (empty for SHT_NOBITS).</summary>
    /// <exception cref="TraceFormatException">The section runs past the end of the file.</exception>
    public ReadOnlySpan<byte> GetSectionData(ElfSectionHeader section)
    {
        if (!section.HasFileData) return default;
        if (!FitsIn(_data.Length, section.Offset, section.Size))
            throw new TraceFormatException(
                $"section {section.Index} '{section.Name}' at 0x{section.Offset:x} + 0x{section.Size:x} runs past the end of the file ({_data.Length} bytes)",
                new InputPosition(Source, (long)Math.Min(section.Offset, (ulong)_data.Length)));
        return new ReadOnlySpan<byte>(_data, (int)section.Offset, (int)section.Size);
    }

    /// <summary>The file bytes a segment covers (<c>p_filesz</c> of them).</summary>
    /// <exception cref="TraceFormatException">The segment runs past the end of the file.</exception>
    public ReadOnlySpan<byte> GetSegmentData(ElfProgramHeader segment)
    {
        if (!FitsIn(_data.Length, segment.Offset, segment.FileSize))
            throw new TraceFormatException(
                $"segment type 0x{segment.Type:x} at 0x{segment.Offset:x} + 0x{segment.FileSize:x} runs past the end of the file ({_data.Length} bytes)",
                new InputPosition(Source, (long)Math.Min(segment.Offset, (ulong)_data.Length)));
        return new ReadOnlySpan<byte>(_data, (int)segment.Offset, (int)segment.FileSize);
    }

    /// <summary>
    /// Maps a file offset to the virtual address the loader gives it, through the PT_LOAD that
    /// holds it: <c>vaddr = offset - p_offset + p_vaddr</c>.
    /// </summary>
    public bool TryFileOffsetToAddress(ulong fileOffset, out ulong address)
    {
        foreach (ref readonly var p in _programHeaders.AsSpan())
        {
            if (p.Type != ElfConstants.PtLoad) continue;
            if (fileOffset >= p.Offset && fileOffset - p.Offset < Math.Max(p.FileSize, 1))
            {
                address = fileOffset - p.Offset + p.VirtualAddress;
                return true;
            }
        }
        address = 0;
        return false;
    }

    /// <summary>
    /// The PT_LOAD that a mapping with file offset <paramref name="pageOffset"/> (page aligned,
    /// as mmap requires) was made from: the one whose page-aligned file range contains it.
    /// Returns <c>p_offset - p_vaddr</c>, so that <c>vaddr = fileOffset - delta</c>.
    /// </summary>
    public bool TryGetLoadDelta(ulong pageOffset, bool executable, out ulong delta) =>
        TryGetLoadDelta(pageOffset, executable, writable: false, out delta);

    /// <inheritdoc cref="TryGetLoadDelta(ulong, bool, out ulong)"/>
    public bool TryGetLoadDelta(ulong pageOffset, bool executable, bool writable, out ulong delta)
    {
        delta = 0;
        int bestScore = int.MinValue;
        ulong bestDistance = ulong.MaxValue;
        foreach (ref readonly var p in _programHeaders.AsSpan())
        {
            if (p.Type != ElfConstants.PtLoad) continue;
            // The loader maps from p_offset rounded down to its page size, which can be up to
            // p_align (64 KiB pages on arm64); 4 KiB when p_align is not a sane power of two.
            ulong align = p.Align >= 0x1000 && p.Align <= 0x200000 && (p.Align & (p.Align - 1)) == 0 ? p.Align : 0x1000;
            ulong start = p.Offset & ~(align - 1);
            ulong end = p.Offset + Math.Max(p.FileSize, 1);
            if (pageOffset < start || pageOffset >= end) continue;
            // Segments can share a file page (no -z separate-code; RELRO/RW data right after
            // read-only data): prefer the one whose X and W flags match the mapping's, then the
            // one starting nearest the mapping.
            int score = (p.IsExecutable == executable ? 2 : 0) + (((p.Flags & ElfConstants.PfW) != 0) == writable ? 1 : 0);
            ulong distance = p.Offset > pageOffset ? p.Offset - pageOffset : pageOffset - p.Offset;
            if (score > bestScore || (score == bestScore && distance < bestDistance))
            {
                bestScore = score;
                bestDistance = distance;
                delta = unchecked(p.Offset - p.VirtualAddress);
            }
        }
        return bestScore != int.MinValue;
    }

    /// <summary>Lowest and highest+1 virtual address of the executable PT_LOAD segments (the text the kernel registers an SFrame section with).</summary>
    public bool TryGetTextRange(out ulong start, out ulong end)
    {
        start = ulong.MaxValue; end = 0;
        foreach (ref readonly var p in _programHeaders.AsSpan())
        {
            if (p.Type != ElfConstants.PtLoad || !p.IsExecutable) continue;
            start = Math.Min(start, p.VirtualAddress);
            end = Math.Max(end, p.VirtualAddress + p.MemorySize);
        }
        if (end > start) return true;
        start = end = 0;
        return false;
    }

    /// <summary>The GNU build id (<c>NT_GNU_BUILD_ID</c> note), from PT_NOTE segments or, without them, SHT_NOTE sections.</summary>
    public byte[]? BuildId
    {
        get
        {
            if (_buildIdLoaded) return _buildId;
            _buildIdLoaded = true;
            bool anyNoteSegment = false;
            foreach (var p in _programHeaders)
            {
                if (p.Type != ElfConstants.PtNote) continue;
                anyNoteSegment = true;
                if (!FitsIn(_data.Length, p.Offset, p.FileSize)) continue;
                _buildId ??= FindBuildIdNote(new ReadOnlySpan<byte>(_data, (int)p.Offset, (int)p.FileSize));
            }
            if (_buildId is null && !anyNoteSegment)
                foreach (var s in _sections)
                    if (s.Type == ElfConstants.ShtNote && FitsIn(_data.Length, s.Offset, s.Size))
                        _buildId ??= FindBuildIdNote(new ReadOnlySpan<byte>(_data, (int)s.Offset, (int)s.Size));
            return _buildId;
        }
    }

    /// <summary>
    /// Walks notes: <c>namesz:u32 descsz:u32 type:u32 name[namesz] pad4 desc[descsz] pad4</c>
    /// (gABI "Note Section"; 4-byte alignment is what GNU tools emit for these notes).
    /// </summary>
    private byte[]? FindBuildIdNote(ReadOnlySpan<byte> notes)
    {
        int pos = 0;
        while (notes.Length - pos >= 12)
        {
            uint namesz = U32(notes[pos..]), descsz = U32(notes[(pos + 4)..]), type = U32(notes[(pos + 8)..]);
            pos += 12;
            ulong nameEnd = (ulong)pos + ((namesz + 3UL) & ~3UL);
            ulong descEnd = nameEnd + ((descsz + 3UL) & ~3UL);
            if (nameEnd > (ulong)notes.Length || (ulong)pos + namesz > (ulong)notes.Length || nameEnd + descsz > (ulong)notes.Length) return null;
            if (type == ElfConstants.NtGnuBuildId && namesz == 4 && notes.Slice(pos, 4).SequenceEqual("GNU\0"u8))
                return notes.Slice((int)nameEnd, (int)descsz).ToArray();
            if (descEnd > (ulong)notes.Length) return null;
            pos = (int)descEnd;
        }
        return null;
    }

    private uint U32(ReadOnlySpan<byte> s) => IsBigEndian ? BigEndian.UInt32(s) : LittleEndian.UInt32(s);

    /// <summary>
    /// <c>.gnu_debuglink</c>: the debug file name (NUL-terminated, padded to 4) and its CRC-32.
    /// </summary>
    public bool TryGetDebugLink(out string fileName, out uint crc)
    {
        fileName = ""; crc = 0;
        if (!TryGetSection(".gnu_debuglink", out var s) || !FitsIn(_data.Length, s.Offset, s.Size)) return false;
        var d = new ReadOnlySpan<byte>(_data, (int)s.Offset, (int)s.Size);
        int nul = d.IndexOf((byte)0);
        if (nul <= 0) return false;
        int crcAt = (nul + 4) & ~3;
        if (crcAt + 4 > d.Length) return false;
        fileName = Encoding.UTF8.GetString(d[..nul]);
        crc = U32(d[crcAt..]);
        return true;
    }

    /// <summary>
    /// Finds the SFrame data: <c>PT_GNU_SFRAME</c> first (what a loader and the kernel use), else the
    /// <c>.sframe</c> section (SHT_GNU_SFRAME, or SHT_PROGBITS from older tools). The length is taken
    /// from the SFrame header (<c>hdr_size + sfh_freoff + sfh_fre_len</c>), because ld 2.46 makes the
    /// segment larger than the section (sframe.md §1); it is capped by the container.
    /// </summary>
    public bool TryFindSFrame(out ElfSFrameLocation location)
    {
        location = default;
        foreach (var p in _programHeaders)
        {
            if (p.Type != ElfConstants.PtGnuSFrame) continue;
            if (!FitsIn(_data.Length, p.Offset, p.FileSize)) continue;
            uint shType = 0;
            foreach (var s in _sections)
                if (s.Type != ElfConstants.ShtNull && s.Offset == p.Offset && s.Address == p.VirtualAddress) { shType = s.Type; break; }
            location = new ElfSFrameLocation(p.VirtualAddress, (long)p.Offset, DataLength(p.Offset, p.FileSize), p.FileSize, true, shType);
            return true;
        }
        foreach (var s in _sections)
        {
            if (s.Name != ".sframe" && s.Type != ElfConstants.ShtGnuSFrame) continue;
            if (!s.HasFileData || !FitsIn(_data.Length, s.Offset, s.Size)) continue;
            location = new ElfSFrameLocation(s.Address, (long)s.Offset, DataLength(s.Offset, s.Size), s.Size, false, s.Type);
            return true;
        }
        return false;
    }

    /// <summary>The SFrame data length from its header, bounded by the container; the container size if the header is unreadable.</summary>
    private int DataLength(ulong offset, ulong containerSize)
    {
        int size = (int)Math.Min(containerSize, int.MaxValue);
        var d = new ReadOnlySpan<byte>(_data, (int)offset, size);
        return SFrame.SFrameHeader.TryGetDataLength(d, out int len) && len <= size ? len : size;
    }

    /// <summary>The bytes at <paramref name="location"/>.</summary>
    public ReadOnlySpan<byte> GetSFrameData(ElfSFrameLocation location) =>
        new ReadOnlySpan<byte>(_data, (int)location.FileOffset, location.Length);

    /// <summary>
    /// Function symbols (<c>.symtab</c>, else <c>.dynsym</c>), sorted; null when the file has
    /// neither. Built on first use.
    /// </summary>
    public ElfSymbolTable? Symbols
    {
        get
        {
            if (_symbolsLoaded) return _symbols;
            _symbolsLoaded = true;
            _symbols = ElfSymbolTable.TryCreate(this);
            return _symbols;
        }
    }
}
