using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Diagnostics;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// The ELF reader against <c>readelf -hlsW</c> (fixtures/sframe/*/*.readelf-headers.txt, binutils 2.46):
/// every section header, program header and function symbol of 24 binaries (x86-64 and aarch64
/// little endian, s390x big endian); then a synthetic 32-bit big-endian file and damaged headers.
/// </summary>
public partial class ElfFileTests
{
    public static TheoryData<string> Binaries() => SFrameObjdumpTests.Dumps();

    [GeneratedRegex(@"^\s*\[\s*(\d+)\] (.*)$")]
    private static partial Regex SectionLine();

    /// <summary>
    /// readelf -W section line after "[Nr] ": <c>Name Type Address Off Size ES [Flg] Lk Inf Al</c>;
    /// the name is absent for section 0 and may overflow its column, Flg may be empty.
    /// </summary>
    private static (string Name, string Type, ulong Addr, ulong Off, ulong Size, ulong Es, uint Lk, uint Inf, ulong Al) SectionFields(string rest)
    {
        var t = rest.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int i = t.Length >= 2 && t[1].Length == 16 && t[0].All(ch => char.IsUpper(ch) || ch == '_' || char.IsDigit(ch)) ? 0 : 1;
        string name = i == 0 ? "" : t[0];
        int tail = t.Length - (i + 5); // Lk Inf Al, with or without Flg
        int lk = i + 5 + (tail == 4 ? 1 : 0);
        return (name, t[i], X(t[i + 1]), X(t[i + 2]), X(t[i + 3]), X(t[i + 4]),
            uint.Parse(t[lk], CultureInfo.InvariantCulture), uint.Parse(t[lk + 1], CultureInfo.InvariantCulture), ulong.Parse(t[lk + 2], CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"^\s+([A-Z_]+)\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) (.{3}) 0x([0-9a-f]+)$")]
    private static partial Regex ProgramLine();

    [GeneratedRegex(@"^\s+\d+: ([0-9a-f]{16})\s+(\d+) FUNC\s+(\w+)\s+\w+\s+(\w+) (\S+)")]
    private static partial Regex SymbolLine();

    private static ulong X(string s) => ulong.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    [Theory]
    [MemberData(nameof(Binaries))]
    public void HeadersMatchReadelf(string binary)
    {
        var elf = ElfFile.Load(Fixtures.Path("sframe", binary));
        string[] lines = Fixtures.ReadText("sframe", binary + ".readelf-headers.txt").Split('\n');
        Assert.Equal(lines.Any(l => l.Contains("big endian", StringComparison.Ordinal)), elf.IsBigEndian);
        Assert.True(elf.Is64);

        int shStart = Array.FindIndex(lines, l => l.StartsWith("Section Headers:", StringComparison.Ordinal));
        var sections = lines[(shStart + 2)..].TakeWhile(l => l.StartsWith("  [", StringComparison.Ordinal)).Select(l => SectionLine().Match(l)).ToList();
        Assert.All(sections, m => Assert.True(m.Success));
        Assert.Equal(sections.Count, elf.Sections.Count);
        foreach (var m in sections)
        {
            var s = elf.Sections[int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)];
            var r = SectionFields(m.Groups[2].Value);
            // readelf cuts long names with "[...]": compare the visible part.
            if (r.Name.EndsWith("[...]", StringComparison.Ordinal)) Assert.StartsWith(r.Name[..^5], s.Name, StringComparison.Ordinal);
            else Assert.Equal(r.Name, s.Name);
            Assert.Equal((r.Addr, r.Off, r.Size, r.Es, r.Lk, r.Inf, r.Al), (s.Address, s.Offset, s.Size, s.EntrySize, s.Link, s.Info, s.AddressAlign));
            Assert.Equal(r.Type == "GNU_SFRAME", s.Type == ElfConstants.ShtGnuSFrame);
            Assert.Equal(r.Type == "NOBITS", !s.HasFileData && s.Index != 0);
        }

        var phdrs = lines.Select(l => ProgramLine().Match(l)).Where(m => m.Success).ToList();
        Assert.Equal(phdrs.Count, elf.ProgramHeaders.Count);
        for (int i = 0; i < phdrs.Count; i++)
        {
            var m = phdrs[i];
            var p = elf.ProgramHeaders[i];
            Assert.Equal(X(m.Groups[2].Value), p.Offset);
            Assert.Equal(X(m.Groups[3].Value), p.VirtualAddress);
            Assert.Equal(X(m.Groups[5].Value), p.FileSize);
            Assert.Equal(X(m.Groups[6].Value), p.MemorySize);
            Assert.Equal(X(m.Groups[8].Value), p.Align);
            string flg = m.Groups[7].Value;
            Assert.Equal(flg.Contains('E'), p.IsExecutable);
            Assert.Equal(m.Groups[1].Value switch { "LOAD" => ElfConstants.PtLoad, "GNU_SFRAME" => ElfConstants.PtGnuSFrame, "NOTE" => ElfConstants.PtNote, _ => p.Type }, p.Type);
        }

        // .sframe is found through PT_GNU_SFRAME, its length from the SFrame header (the segment may be longer).
        Assert.True(elf.TryFindSFrame(out var loc));
        Assert.True(loc.FromSegment);
        Assert.True(elf.TryGetSection(".sframe", out var sframe));
        Assert.Equal(sframe.Address, loc.Address);
        Assert.Equal((long)sframe.Size, loc.Length);
        Assert.True(loc.ContainerSize >= sframe.Size);
    }

    [Theory]
    [MemberData(nameof(Binaries))]
    public void FunctionSymbolsMatchReadelf(string binary)
    {
        var elf = ElfFile.Load(Fixtures.Path("sframe", binary));
        var symbols = elf.Symbols!;
        Assert.Equal(".symtab", symbols.SectionName);
        string[] lines = Fixtures.ReadText("sframe", binary + ".readelf-headers.txt").Split('\n');
        int symtabAt = Array.FindIndex(lines, l => l.StartsWith("Symbol table '.symtab'", StringComparison.Ordinal));
        var funcs = lines[symtabAt..].Select(l => SymbolLine().Match(l)).Where(m => m.Success && m.Groups[4].Value != "UND").ToList();
        Assert.NotEmpty(funcs);
        foreach (var m in funcs)
        {
            ulong value = X(m.Groups[1].Value), size = ulong.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
            string name = m.Groups[5].Value;
            // Its start and its last byte resolve to a symbol starting there (a same-address alias may win).
            Assert.True(symbols.TryResolve(value, out string got, out ulong off));
            Assert.Equal(0UL, off);
            var aliases = funcs.Where(f => X(f.Groups[1].Value) == value).Select(f => f.Groups[5].Value).ToList();
            Assert.Contains(got, aliases);
            if (size > 1)
            {
                Assert.True(symbols.TryResolve(value + size - 1, out got, out off));
                Assert.Contains(got, aliases);
                Assert.Equal(size - 1, off);
            }
        }
    }

    // ---------------------------------------------------------------- synthetic

    /// <summary>
    /// SYNTHETIC: a 32-bit big-endian ELF built byte by byte (no 32-bit fixture exists): header,
    /// one PT_LOAD and one PT_NOTE, sections .shstrtab, .text, .note.gnu.build-id, .symtab,
    /// .strtab, .gnu_debuglink; the 32-bit field orders differ from 64-bit ones (Elf32_Phdr puts
    /// p_flags after p_memsz, Elf32_Sym puts st_value before st_info).
    /// </summary>
    internal static byte[] Elf32Be()
    {
        var shstr = "\0.shstrtab\0.text\0.note.gnu.build-id\0.symtab\0.strtab\0.gnu_debuglink\0"u8.ToArray();
        int N(string s) => Encoding.ASCII.GetString(shstr).IndexOf("\0" + s + "\0", StringComparison.Ordinal) + 1;
        var strtab = "\0start\0helper\0"u8.ToArray();
        byte[] buildId = Convert.FromHexString("0123456789abcdef0123456789abcdef01234567");

        var d = new byte[0x420];
        void U16(int at, int v) => BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(at), (ushort)v);
        void U32(int at, long v) => BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(at), (uint)v);
        "\x7f"u8.CopyTo(d); "ELF"u8.CopyTo(d.AsSpan(1));
        d[4] = 1; d[5] = 2; d[6] = 1;                      // ELFCLASS32, ELFDATA2MSB, EV_CURRENT
        U16(16, 2); U16(18, 22); U32(20, 1);               // ET_EXEC, EM_S390 (31-bit s390)
        U32(24, 0x10000100); U32(28, 0x34); U32(32, 0x300); // entry, phoff, shoff
        U16(40, 52); U16(42, 32); U16(44, 2); U16(46, 40); U16(48, 7); U16(50, 1);
        // PT_LOAD: type offset vaddr paddr filesz memsz flags align
        U32(0x34, 1); U32(0x38, 0); U32(0x3c, 0x10000000); U32(0x40, 0x10000000); U32(0x44, 0x200); U32(0x48, 0x200); U32(0x4c, 5); U32(0x50, 0x1000);
        // PT_NOTE at 0x180
        U32(0x54, 4); U32(0x58, 0x180); U32(0x5c, 0x10000180); U32(0x60, 0x10000180); U32(0x64, 36); U32(0x68, 36); U32(0x6c, 4); U32(0x70, 4);
        // .text bytes at 0x100..0x140 (content irrelevant); note at 0x180: namesz 4, descsz 20, type 3, "GNU\0", id
        U32(0x180, 4); U32(0x184, 20); U32(0x188, 3); "GNU\0"u8.CopyTo(d.AsSpan(0x18c)); buildId.CopyTo(d.AsSpan(0x190));
        // .symtab at 0x1c0: null, start (0x10000100, 0x20, FUNC GLOBAL, shndx 2), helper (0x10000120, 0, FUNC LOCAL)
        U32(0x1d0, 1); U32(0x1d4, 0x10000100); U32(0x1d8, 0x20); d[0x1dc] = 0x12; U16(0x1de, 2);
        U32(0x1e0, 7); U32(0x1e4, 0x10000120); U32(0x1e8, 0); d[0x1ec] = 0x02; U16(0x1ee, 2);
        strtab.CopyTo(d.AsSpan(0x1f0));
        // .gnu_debuglink at 0x210: "x.debug\0" CRC
        "x.debug\0"u8.CopyTo(d.AsSpan(0x210)); U32(0x218, 0xdeadbeef);
        shstr.CopyTo(d.AsSpan(0x220));
        // section headers at 0x300: name type flags addr offset size link info addralign entsize
        void Sh(int i, int name, int type, int flags, long addr, int off, int size, int link, int info, int align, int ent)
        {
            int at = 0x300 + i * 40;
            U32(at, name); U32(at + 4, type); U32(at + 8, flags); U32(at + 12, addr); U32(at + 16, off); U32(at + 20, size);
            U32(at + 24, link); U32(at + 28, info); U32(at + 32, align); U32(at + 36, ent);
        }
        Sh(1, N(".shstrtab"), 3, 0, 0, 0x220, shstr.Length, 0, 0, 1, 0);
        Sh(2, N(".text"), 1, 6, 0x10000100, 0x100, 0x40, 0, 0, 4, 0);
        Sh(3, N(".note.gnu.build-id"), 7, 2, 0x10000180, 0x180, 36, 0, 0, 4, 0);
        Sh(4, N(".symtab"), 2, 0, 0, 0x1c0, 48, 5, 1, 4, 16);
        Sh(5, N(".strtab"), 3, 0, 0, 0x1f0, strtab.Length, 0, 0, 1, 0);
        Sh(6, N(".gnu_debuglink"), 1, 0, 0, 0x210, 12, 0, 0, 4, 0);
        return d;
    }

    [Fact]
    public void Reads32BitBigEndian()
    {
        var elf = ElfFile.Parse(Elf32Be(), "synthetic32");
        Assert.False(elf.Is64);
        Assert.True(elf.IsBigEndian);
        Assert.Equal("elf32-s390", elf.Header.BfdTargetName);
        Assert.Equal(UnwindArch.Unknown, elf.Arch);
        Assert.Equal(0x10000100UL, elf.Header.Entry);
        Assert.Equal(2, elf.ProgramHeaders.Count);
        var load = elf.ProgramHeaders[0];
        Assert.Equal((ElfConstants.PtLoad, 5u, 0x10000000UL, 0x200UL, 0x1000UL), (load.Type, load.Flags, load.VirtualAddress, load.FileSize, load.Align));
        Assert.Equal([".shstrtab", ".text", ".note.gnu.build-id", ".symtab", ".strtab", ".gnu_debuglink"], elf.Sections.Skip(1).Select(s => s.Name));
        Assert.Equal("0123456789abcdef0123456789abcdef01234567", Convert.ToHexStringLower(elf.BuildId!));
        Assert.True(elf.TryGetDebugLink(out string link, out uint crc));
        Assert.Equal(("x.debug", 0xdeadbeefu), (link, crc));
        Assert.True(elf.Symbols!.TryResolve(0x10000110, out string name, out ulong off));
        Assert.Equal(("start", 0x10UL), (name, off));
        Assert.True(elf.Symbols.TryResolve(0x10000130, out name, out off)); // size 0: up to the next symbol / end
        Assert.Equal(("helper", 0x10UL), (name, off));
        Assert.False(elf.Symbols.TryResolve(0x100000ff, out _, out _));
        Assert.True(elf.TryFileOffsetToAddress(0x104, out ulong va));
        Assert.Equal(0x10000104UL, va);
        Assert.False(elf.TryFindSFrame(out _));
    }

    public static TheoryData<string> Damages() => new(["magic", "class", "data", "phentsize", "phnum-cap", "phdrs-past-end", "shdrs-past-end", "truncated-header"]);

    [Theory]
    [MemberData(nameof(Damages))]
    public void DamagedHeadersAreRefusedWithOffset(string what)
    {
        var d = Elf32Be();
        void U16(int at, int v) => BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(at), (ushort)v);
        void U32(int at, long v) => BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(at), (uint)v);
        string expect;
        switch (what)
        {
            case "magic": d[1] = (byte)'X'; expect = "not an ELF file"; break;
            case "class": d[4] = 3; expect = "unknown ELF class"; break;
            case "data": d[5] = 0; expect = "unknown ELF data encoding"; break;
            case "phentsize": U16(42, 56); expect = "e_phentsize is 56"; break;
            case "phnum-cap": U16(44, 0xffff); U32(0x300 + 28, 40_000); expect = "program headers: more than"; break;
            case "phdrs-past-end": U32(28, 0x3f0); expect = "program header table"; break;
            case "shdrs-past-end": U16(48, 200); expect = "section header table"; break;
            default: d = d[..40]; expect = "truncated"; break;
        }
        var e = Assert.Throws<TraceFormatException>(() => ElfFile.Parse(d, "bad.elf"));
        Assert.Contains(expect, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("bad.elf: byte offset 0x", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RandomDamageOnlyRaisesTraceFormatException()
    {
        // Real 64-bit files and the 32-bit one, bytes replaced at random in the first 4 KiB (headers,
        // notes, symbol tables): parsing and every lookup may only refuse with TraceFormatException.
        var inputs = new List<byte[]> { Elf32Be(), File.ReadAllBytes(Fixtures.Path("sframe", "s390x", "leaf-O2")), File.ReadAllBytes(Fixtures.Path("sframe", "x86_64", "stackcap")) };
        var rng = new Random(4242);
        foreach (var original in inputs)
            for (int iter = 0; iter < 1500; iter++)
            {
                var d = (byte[])original.Clone();
                for (int k = rng.Next(1, 6); k > 0; k--) d[rng.Next(Math.Min(d.Length, 4096))] = (byte)rng.Next(256);
                ElfFile elf;
                try { elf = ElfFile.Parse(d); }
                catch (TraceFormatException) { continue; }
                _ = elf.BuildId;
                elf.TryGetDebugLink(out _, out _);
                elf.TryGetTextRange(out _, out _);
                elf.Symbols?.TryResolve(0x1000, out _, out _);
                if (elf.TryFindSFrame(out var loc))
                {
                    try { Unwinding.SFrame.SFrameSection.FromElf(elf); }
                    catch (Unwinding.SFrame.SFrameException) { }
                }
                foreach (var s in elf.Sections)
                    try { elf.GetSectionData(s); } catch (TraceFormatException) { }
            }
    }

    /// <summary>
    /// stackcap's read-only data (file 0x2000, vaddr 0x2000) and RW data (file 0x2da8, vaddr 0x3da8)
    /// start in the same file page, so ld.so maps both with pgoff 0x2000: the mapping's W flag decides
    /// (readelf: LOAD 0x002000 0x2000 R; LOAD 0x002da8 0x3da8 RW; text 0x001000 0x1000 R E).
    /// </summary>
    [Fact]
    public void LoadDeltaFollowsTheMappingsProtection()
    {
        var elf = ElfFile.Load(Fixtures.Path("sframe", "x86_64", "stackcap"));
        Assert.True(elf.TryGetLoadDelta(0x2000, executable: false, writable: false, out ulong d));
        Assert.Equal(0UL, d);
        Assert.True(elf.TryGetLoadDelta(0x2000, executable: false, writable: true, out d));
        Assert.Equal(unchecked(0x2da8UL - 0x3da8UL), d);
        Assert.True(elf.TryGetLoadDelta(0x1000, executable: true, out d));
        Assert.Equal(0UL, d);
        Assert.False(elf.TryGetLoadDelta(0x10000, executable: true, out _));
    }
}
