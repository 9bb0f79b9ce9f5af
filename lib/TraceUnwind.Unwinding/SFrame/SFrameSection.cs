using System.Runtime.CompilerServices;
using TraceUnwind.Buffers;
using TraceUnwind.Diagnostics;
using TraceUnwind.Unwinding.Arch;

namespace TraceUnwind.Unwinding.SFrame;

/// <summary>How <see cref="SFrameSection.Parse"/> checks the data.</summary>
/// <param name="Validate">
/// True (the default): every check the kernel makes at registration and lookup (sframe.md §7.1-7.3)
/// plus the v15 additions (§7.4), once, on load; the section is then safe to look up without
/// further checks. False: only what is needed to decode without reading out of bounds (for
/// dumping relocatable objects, unsorted or otherwise refused sections the way objdump does).
/// </param>
/// <param name="TextStart">Start of the text the section describes (executable PT_LOAD); with <paramref name="TextEnd"/>, FDEs must lie inside.</param>
/// <param name="TextEnd">End of that text.</param>
/// <param name="Source">File name for error positions.</param>
/// <param name="FileOffset">File offset of the SFrame data, so errors name a file position too.</param>
public readonly record struct SFrameParseOptions(
    bool Validate = true, ulong TextStart = 0, ulong TextEnd = 0, string? Source = null, long FileOffset = 0)
{
    public bool HasTextRange => TextEnd > TextStart;
}

/// <summary>
/// An SFrame section (V3, and V2 which binutils 2.41-2.45 emit), decoded and validated once
/// (the kernel's <c>CONFIG_SFRAME_VALIDATION</c> pass: validate once, look up cheaply after).
/// FDEs and FREs are decoded into arrays, and every FRE's <see cref="FrameRule"/> is made on
/// load, so a lookup is two binary searches and no allocation.
/// Layout (sframe-spec.texi; sframe.md §2-4):
/// <code>
/// header (28 + auxhdr) | FDE index (sfh_fdeoff; V3 16 bytes each, V2 20) | FRE sub-section (sfh_freoff, sfh_fre_len bytes)
/// V3 FRE sub-section, per function: attr {u16 num_fres, u8 info, u8 info2, u8 rep_size} then its FREs
/// </code>
/// </summary>
public sealed class SFrameSection
{
    /// <summary>V3 FDE index entry size.</summary>
    public const int FdeIndexSizeV3 = 16;
    /// <summary>V2 FDE size.</summary>
    public const int FdeSizeV2 = 20;
    /// <summary>V3 attribute record size.</summary>
    public const int FdeAttrSize = 5;

    private readonly byte[] _data;
    private readonly SFrameFde[] _fdes;
    private readonly SFrameFre[] _fres;
    private readonly int[] _words;
    private readonly FrameRule[] _rules;
    // FDE indexes in address order (identity when the index is sorted).
    private readonly int[] _order;
    private readonly ulong[] _orderedStarts;

    private SFrameSection(byte[] data, ulong address, SFrameHeader header, ArchDescriptor? arch, bool validated,
        SFrameFde[] fdes, SFrameFre[] fres, int[] words, FrameRule[] rules, int[] order, ulong[] orderedStarts)
    {
        _data = data; Address = address; Header = header; Arch = arch; IsValidated = validated;
        _fdes = fdes; _fres = fres; _words = words; _rules = rules; _order = order; _orderedStarts = orderedStarts;
    }

    /// <summary>Virtual address of the first byte (the header).</summary>
    public ulong Address { get; }
    public SFrameHeader Header { get; }
    /// <summary>The architecture of <see cref="SFrameHeader.Abi"/>; null for an unknown ABI (only when not validated).</summary>
    public ArchDescriptor? Arch { get; }
    /// <summary>True when the kernel's checks passed on load.</summary>
    public bool IsValidated { get; }
    public int Version => Header.Version;
    /// <summary>The SFrame data (header to end of FREs).</summary>
    public ReadOnlySpan<byte> Data => _data;
    public ReadOnlySpan<SFrameFde> Fdes => _fdes;
    public ReadOnlySpan<SFrameFre> Fres => _fres;

    /// <summary>The FREs of <paramref name="fde"/>.</summary>
    public ReadOnlySpan<SFrameFre> FresOf(in SFrameFde fde) => _fres.AsSpan(fde.FirstFre, fde.NumFres);

    /// <summary>Data word <paramref name="i"/> of <paramref name="fre"/>, sign-extended from its size.</summary>
    public int Word(in SFrameFre fre, int i) => _words[fre.FirstWord + i];

    /// <summary>Data word <paramref name="i"/> of <paramref name="fre"/> read unsigned (flex control words).</summary>
    public uint UWord(in SFrameFre fre, int i) => (uint)_words[fre.FirstWord + i] & SizeMask(fre.DataWordSizeCode);

    /// <summary>The rule made from FRE <paramref name="freIndex"/> (see <see cref="FrameRuleFlags.Unusable"/>).</summary>
    public FrameRule RuleOf(int freIndex) => _rules[freIndex];

    private static uint SizeMask(int code) => code switch { 0 => 0xffu, 1 => 0xffffu, _ => 0xffffffffu };

    /// <summary>Parses and (by default) validates SFrame data.</summary>
    /// <param name="data">The SFrame bytes: header through the end of the FRE sub-section (extra bytes after it are ignored).</param>
    /// <param name="address">Virtual address of <paramref name="data"/>[0] (section or PT_GNU_SFRAME address).</param>
    /// <param name="options">Checks to make and positions for errors (default: validate, no text range).</param>
    /// <exception cref="SFrameException">The data fails a check; <see cref="SFrameException.Kind"/> keeps the kernel's class.</exception>
    public static SFrameSection Parse(ReadOnlySpan<byte> data, ulong address, SFrameParseOptions? options = null)
    {
        var p = new Parser(data, address, options ?? new SFrameParseOptions(Validate: true));
        if (!SFrameHeader.TryRead(data, out var hdr))
        {
            if (data.Length < SFrameHeader.FixedSize)
                p.Fail(SFrameErrorKind.BadAddress, 0, $"{data.Length} bytes cannot hold the {SFrameHeader.FixedSize}-byte SFrame header");
            p.Fail(SFrameErrorKind.Invalid, 0, $"bad magic 0x{data[0]:x2}{data[1]:x2} (expected 0xdee2 in either byte order)");
        }
        return hdr.IsBigEndian ? p.Run<BigEndian>(hdr) : p.Run<LittleEndian>(hdr);
    }

    /// <summary>
    /// The SFrame data of <paramref name="elf"/> (PT_GNU_SFRAME, else <c>.sframe</c>), validated
    /// against the file's executable PT_LOAD range; null when the file has none.
    /// </summary>
    /// <exception cref="SFrameException">The data fails a check.</exception>
    public static SFrameSection? FromElf(Elf.ElfFile elf, bool validate = true)
    {
        if (!elf.TryFindSFrame(out var loc)) return null;
        ulong textStart = 0, textEnd = 0;
        if (validate) elf.TryGetTextRange(out textStart, out textEnd);
        return Parse(elf.GetSFrameData(loc), loc.Address,
            new SFrameParseOptions(validate, textStart, textEnd, elf.Source, loc.FileOffset));
    }

    // ---------------------------------------------------------------- lookup

    /// <summary>
    /// Finds the FDE and FRE describing <paramref name="pc"/> (a virtual address in the file's
    /// terms): the last FDE starting at or below it (binary search), which must cover it, then the
    /// last FRE starting at or below the offset into it (for PC type MASK, the offset modulo
    /// <c>rep_size</c>). False means no entry (the kernel's ENOENT): outside every function, a gap,
    /// or before the function's first FRE.
    /// </summary>
    public bool TryFind(ulong pc, out int fdeIndex, out int freIndex)
    {
        freIndex = -1;
        fdeIndex = -1;
        var starts = _orderedStarts;
        int lo = 0, hi = starts.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (starts[mid] <= pc) lo = mid + 1; else hi = mid;
        }
        if (lo == 0) return false;
        fdeIndex = _order[lo - 1];
        ref readonly var fde = ref _fdes[fdeIndex];
        ulong off = pc - fde.Start;
        if (off >= fde.Size) { fdeIndex = -1; return false; }
        if (fde.NumFres == 0) return true;
        if (fde.PcType == SFramePcType.Mask)
        {
            if (fde.RepSize == 0) { fdeIndex = -1; return false; }
            off %= fde.RepSize;
        }
        int flo = fde.FirstFre, fhi = fde.FirstFre + fde.NumFres;
        var fres = _fres;
        while (flo < fhi)
        {
            int mid = (flo + fhi) >>> 1;
            if (fres[mid].StartOffset <= off) flo = mid + 1; else fhi = mid;
        }
        if (flo == fde.FirstFre) { fdeIndex = -1; return false; }
        freIndex = flo - 1;
        return true;
    }

    /// <summary>The unwind rule for <paramref name="pc"/>; false when no FDE/FRE covers it.</summary>
    public bool TryGetRule(ulong pc, out FrameRule rule)
    {
        if (!TryFind(pc, out int fdeIndex, out int freIndex)) { rule = default; return false; }
        // An FDE without FREs: the V3 spec's outermost frame (sframe.md §10.3).
        rule = freIndex < 0 ? FrameRule.Outermost(FrameRuleFlags.FromSFrame) : _rules[freIndex];
        if (freIndex < 0 && _fdes[fdeIndex].IsSignalFrame) rule = rule with { Flags = rule.Flags | FrameRuleFlags.SignalFrame };
        return true;
    }

    // ---------------------------------------------------------------- parsing

    private ref struct Parser
    {
        private readonly ReadOnlySpan<byte> _data;
        private readonly ulong _address;
        private readonly SFrameParseOptions _o;

        public Parser(ReadOnlySpan<byte> data, ulong address, SFrameParseOptions options)
        {
            _data = data; _address = address; _o = options;
        }

        [System.Diagnostics.CodeAnalysis.DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
        public readonly void Fail(SFrameErrorKind kind, long sectionOffset, string message) =>
            throw new SFrameException(kind, message, sectionOffset, new InputPosition(_o.Source, _o.FileOffset + sectionOffset));

        public SFrameSection Run<T>(SFrameHeader h) where T : struct, IByteOrder
        {
            bool strict = _o.Validate;
            var arch = ArchDescriptor.ForSFrameAbi(h.Abi);

            // -- header (kernel sframe_read_header; libsframe sframe_header_sanity_check_p)
            if (h.Version is not (2 or 3))
                Fail(SFrameErrorKind.Invalid, 2, $"SFrame version {h.Version} is not supported (2 and 3 are)");
            if (strict)
            {
                if ((h.Flags & SFrameFlags.FdeSorted) == 0)
                    Fail(SFrameErrorKind.Invalid, 3, "flags lack SFRAME_F_FDE_SORTED");
                if (h.Version == 3 && (h.Flags & SFrameFlags.FdeFuncStartPcRel) == 0)
                    Fail(SFrameErrorKind.Invalid, 3, "flags lack SFRAME_F_FDE_FUNC_START_PCREL");
                byte allowed = h.Version == 3 ? (byte)0x5 : (byte)0x7;
                if (((byte)h.Flags & ~allowed) != 0)
                    Fail(SFrameErrorKind.Invalid, 3, $"reserved flag bits set: 0x{(byte)h.Flags:x2} (V{h.Version} allows 0x{allowed:x})");
                if (arch is null)
                    Fail(SFrameErrorKind.Invalid, 4, $"unknown ABI/arch {(byte)h.Abi}");
                if (arch.IsBigEndian != h.IsBigEndian)
                    Fail(SFrameErrorKind.Invalid, 0, $"{h.AbiName} data with {(h.IsBigEndian ? "big" : "little")}-endian magic");
                if (h.AuxHeaderLength != 0)
                    Fail(SFrameErrorKind.Invalid, 7, $"auxiliary header of {h.AuxHeaderLength} bytes (none is supported)");
                if (h.NumFdes == 0 || h.NumFres == 0)
                    Fail(SFrameErrorKind.Invalid, 8, $"{h.NumFdes} FDEs and {h.NumFres} FREs: both must be non-zero");
            }
            // All sums in 64 bits: each term is at most 2^32, so none wraps.
            long hdrEnd = h.Size;
            long end = _data.Length;
            int fdeSize = h.Version == 3 ? FdeIndexSizeV3 : FdeSizeV2;
            long fdesStart = hdrEnd + h.FdeOffset;
            long fresStart = hdrEnd + h.FreOffset;
            long fresEnd = fresStart + h.FreLength;
            if (hdrEnd >= end)
                Fail(SFrameErrorKind.Invalid, 7, $"header ({hdrEnd} bytes) reaches the end of the {end}-byte section");
            if (fdesStart + (long)fdeSize * h.NumFdes > fresStart && (strict || fdesStart + (long)fdeSize * h.NumFdes > end))
                Fail(SFrameErrorKind.Invalid, 0x14, $"FDE index at 0x{fdesStart:x} ({h.NumFdes} x {fdeSize} bytes) runs into the FRE sub-section at 0x{fresStart:x}");
            if (fresEnd > end)
                Fail(SFrameErrorKind.Invalid, 0x10, $"FRE sub-section 0x{fresStart:x} + {h.FreLength} ends past the section ({end} bytes)");
            // A FRE takes at least 2 bytes (1-byte start + info): caps what the header may claim.
            if (h.NumFres > h.FreLength / 2 + 1)
                Fail(SFrameErrorKind.Invalid, 0x0c, $"{h.NumFres} FREs cannot fit in {h.FreLength} bytes");

            var c = new SpanCursor<T>(_data);
            int nf = (int)h.NumFdes;
            var fdes = new SFrameFde[nf];

            // -- pass 1: FDE index entries and attribute records (kernel __read_fde)
            long totalFres = 0;
            bool sorted = true;
            for (int i = 0; i < nf; i++)
            {
                int at = (int)(fdesStart + (long)i * fdeSize);
                c.Position = at;
                long startOff; uint size, freOff; int numFres; byte info, info2, rep;
                int attrAt = -1, firstFreAt;
                if (h.Version == 3)
                {
                    startOff = c.ReadInt64(); size = c.ReadUInt32(); freOff = c.ReadUInt32();
                    // The attribute record must lie in the FRE sub-section (kernel: -EINVAL).
                    if (freOff > h.FreLength || h.FreLength - freOff < FdeAttrSize)
                        Fail(SFrameErrorKind.Invalid, at + 12, $"FDE {i}: attribute record at FRE offset 0x{freOff:x} lies outside the {h.FreLength}-byte FRE sub-section");
                    attrAt = (int)(fresStart + freOff);
                    c.Position = attrAt;
                    numFres = c.ReadUInt16(); info = c.ReadByte(); info2 = c.ReadByte(); rep = c.ReadByte();
                    firstFreAt = attrAt + FdeAttrSize;
                }
                else
                {
                    startOff = c.ReadInt32(); size = c.ReadUInt32(); freOff = c.ReadUInt32();
                    uint n = c.ReadUInt32(); info = c.ReadByte(); rep = c.ReadByte(); info2 = 0;
                    if (n > h.FreLength) Fail(SFrameErrorKind.Invalid, at + 12, $"FDE {i}: {n} FREs cannot fit in the FRE sub-section");
                    numFres = (int)n;
                    if (freOff > h.FreLength)
                        Fail(SFrameErrorKind.Invalid, at + 8, $"FDE {i}: first FRE at FRE offset 0x{freOff:x} lies outside the {h.FreLength}-byte FRE sub-section");
                    firstFreAt = (int)(fresStart + freOff);
                }
                // PCREL: relative to the FDE entry's start_offset field (offset 0 of the entry);
                // otherwise (V2 without erratum 1) relative to the section start.
                ulong start = (h.Flags & SFrameFlags.FdeFuncStartPcRel) != 0
                    ? unchecked(_address + (ulong)at + (ulong)startOff)
                    : unchecked(_address + (ulong)startOff);
                if (i > 0 && start <= fdes[i - 1].Start)
                {
                    if (strict) Fail(SFrameErrorKind.BadAddress, at, $"FDE {i}: function start 0x{start:x} not above FDE {i - 1}'s 0x{fdes[i - 1].Start:x} (FDEs not sorted)");
                    sorted = false;
                }
                var fde = new SFrameFde(i, at, startOff, start, size, freOff, attrAt, firstFreAt, numFres, info, info2, rep, (int)totalFres, 0);
                if ((int)fde.FreType > 2)
                    Fail(SFrameErrorKind.BadAddress, attrAt >= 0 ? attrAt + 2 : at + 16, $"FDE {i}: FRE type {(int)fde.FreType} is not 0, 1 or 2");
                if (strict)
                {
                    if (_o.HasTextRange)
                    {
                        if (start < _o.TextStart || start >= _o.TextEnd)
                            Fail(SFrameErrorKind.Invalid, at, $"FDE {i}: function start 0x{start:x} outside the text [0x{_o.TextStart:x}, 0x{_o.TextEnd:x})");
                        if (size > _o.TextEnd - start)
                            Fail(SFrameErrorKind.Invalid, at + 8, $"FDE {i}: function end 0x{start + size:x} beyond the text end 0x{_o.TextEnd:x}");
                    }
                    if ((int)fde.FdeType > 1)
                        Fail(SFrameErrorKind.BadAddress, attrAt + 3, $"FDE {i}: FDE type {(int)fde.FdeType} is neither DEFAULT nor FLEX");
                    if (fde.InfoBit6 != 0 || (info2 & 0xe0) != 0)
                        Fail(SFrameErrorKind.Invalid, attrAt >= 0 ? attrAt + 2 : at + 16, $"FDE {i}: reserved bits set in info 0x{info:x2} / info2 0x{info2:x2}");
                    if (fde.PcType == SFramePcType.Mask && rep == 0)
                        Fail(SFrameErrorKind.Invalid, attrAt >= 0 ? attrAt + 4 : at + 17, $"FDE {i}: PC type MASK with rep_size 0");
                    if ((uint)numFres > size)
                        Fail(SFrameErrorKind.Invalid, attrAt >= 0 ? attrAt : at + 12, $"FDE {i}: {numFres} FREs for a {size}-byte function (each FRE covers at least one byte)");
                }
                totalFres += numFres;
                // Every FRE must be decodable without running past the sub-section, so the sum
                // is bounded by the header's count (itself bounded by sfh_fre_len) before it sizes an array.
                if (totalFres > h.NumFres && (strict || totalFres > h.FreLength / 2 + 1))
                    Fail(SFrameErrorKind.Invalid, attrAt >= 0 ? attrAt : at + 12, $"FDE {i}: FDEs claim {totalFres} FREs, the header {h.NumFres}");
                fdes[i] = fde;
            }

            // -- pass 2: FREs and data words (kernel __read_fre, __read_*_fre_datawords)
            var fres = new SFrameFre[totalFres];
            var rules = new FrameRule[totalFres];
            var words = new List<int>((int)Math.Min(totalFres * 3, h.FreLength));
            int k = 0;
            for (int i = 0; i < nf; i++)
            {
                ref var fde = ref fdes[i];
                int at = fde.FirstFreOffset;
                int addrSize = fde.AddressSize;
                long prevStart = -1;
                for (int j = 0; j < fde.NumFres; j++)
                {
                    if ((long)at + addrSize + 1 > fresEnd)
                        Fail(SFrameErrorKind.BadAddress, at, $"FDE {i} FRE {j}: header at 0x{at:x} runs past the FRE sub-section end 0x{fresEnd:x}");
                    c.Position = at;
                    uint startIp = addrSize switch { 1 => c.ReadByte(), 2 => c.ReadUInt16(), _ => c.ReadUInt32() };
                    byte finfo = c.ReadByte();
                    int n = (finfo >> 1) & 0xf, sizeCode = (finfo >> 5) & 3;
                    if (sizeCode == 3)
                        Fail(SFrameErrorKind.BadAddress, at + addrSize, $"FDE {i} FRE {j}: data word size code 3 is invalid");
                    int wbytes = 1 << sizeCode;
                    if ((long)c.Position + n * wbytes > fresEnd)
                        Fail(SFrameErrorKind.BadAddress, at, $"FDE {i} FRE {j}: {n} data words of {wbytes} bytes run past the FRE sub-section end 0x{fresEnd:x}");
                    if (strict)
                    {
                        if (fde.PcType == SFramePcType.Inc && startIp > fde.Size)
                            Fail(SFrameErrorKind.BadAddress, at, $"FDE {i} FRE {j}: start offset 0x{startIp:x} beyond the {fde.Size}-byte function");
                        if ((long)startIp <= prevStart)
                            Fail(SFrameErrorKind.BadAddress, at, $"FDE {i} FRE {j}: start offset 0x{startIp:x} not above the previous 0x{prevStart:x}");
                    }
                    prevStart = startIp;
                    int first = words.Count;
                    for (int w = 0; w < n; w++)
                        words.Add(sizeCode switch { 0 => c.ReadSByte(), 1 => c.ReadInt16(), _ => c.ReadInt32() });
                    int size = addrSize + 1 + n * wbytes;
                    var fre = new SFrameFre(startIp, at, finfo, first, size);
                    fres[k] = fre;
                    rules[k] = MakeRule(h, arch, fde, fre, words, strict, j);
                    k++;
                    at += size;
                }
                fde = fde with { FreBytes = at - fde.FirstFreOffset + (fde.AttributeOffset >= 0 ? FdeAttrSize : 0) };
            }

            // Lookups walk FDEs in address order.
            var order = new int[nf];
            for (int i = 0; i < nf; i++) order[i] = i;
            if (!sorted) Array.Sort(order, (a, b) => fdes[a].Start.CompareTo(fdes[b].Start));
            var starts = new ulong[nf];
            for (int i = 0; i < nf; i++) starts[i] = fdes[order[i]].Start;
            return new SFrameSection(_data[..(int)Math.Min(fresEnd, end)].ToArray(), _address, h, arch, strict,
                fdes, fres, words.ToArray(), rules, order, starts);
        }

        /// <summary>
        /// Turns one FRE into the unwinder's rule shape (sframe.md §4.1, §4.2; kernel
        /// <c>__read_default_fre_datawords</c> / <c>__read_flex_fde_fre_datawords</c>), checking
        /// that the words are consumed exactly. In lenient mode a row that breaks a rule becomes
        /// <see cref="FrameRuleFlags.Unusable"/> instead of an error.
        /// </summary>
        private readonly FrameRule MakeRule(SFrameHeader h, ArchDescriptor? arch, SFrameFde fde, SFrameFre fre,
            List<int> words, bool strict, int j)
        {
            var flags = FrameRuleFlags.FromSFrame;
            if (fre.MangledRa) flags |= FrameRuleFlags.MangledRa;
            if (fde.IsSignalFrame) flags |= FrameRuleFlags.SignalFrame;
            int n = fre.DataWordCount;
            if (n == 0) return FrameRule.Outermost(flags);
            if (arch is null) return new FrameRule(default, default, default, flags | FrameRuleFlags.Unusable);
            bool s390 = arch.Arch == UnwindArch.S390x;
            int W(int i) => words[fre.FirstWord + i];
            uint U(int i) => (uint)words[fre.FirstWord + i] & SizeMask(fre.DataWordSizeCode);
            long DecodeCfa(int raw) => s390 ? (long)raw * 8 + 160 : raw;  // SFRAME_V2_S390X_CFA_OFFSET_DECODE: stored (off - 160) / 8
            ValueRule FixedRa() => h.CfaFixedRaOffset != 0 ? ValueRule.AtCfa(h.CfaFixedRaOffset) : ValueRule.InRegister(arch.LinkRegister);
            ValueRule FixedFp() => h.CfaFixedFpOffset != 0 ? ValueRule.AtCfa(h.CfaFixedFpOffset) : ValueRule.Unchanged;

            string? error = null;
            SFrameErrorKind kind = SFrameErrorKind.BadAddress;
            CfaRule cfa = default;
            ValueRule ra = default, fp = default;
            int idx;
            if (fde.FdeType != SFrameFdeType.Flex)
            {
                // Default FDE: CFA = BASE + w0; then RA (only when not fixed), then FP (only when not fixed).
                cfa = new CfaRule(fre.IsSpBased ? arch.SpRegister : arch.FpRegister, DecodeCfa(W(0)));
                idx = 1;
                if (h.CfaFixedRaOffset != 0) ra = ValueRule.AtCfa(h.CfaFixedRaOffset);
                else if (idx < n)
                {
                    int w = W(idx++);
                    // V2 s390x: an odd offset is a DWARF register number shifted left by one.
                    if (s390 && h.Version == 2 && (w & 1) != 0) ra = ValueRule.InRegister((ushort)(w >> 1));
                    // SFRAME_FRE_RA_OFFSET_INVALID: padding before an FP offset, RA not saved.
                    else ra = w == 0 ? ValueRule.InRegister(arch.LinkRegister) : ValueRule.AtCfa(w);
                }
                else ra = ValueRule.InRegister(arch.LinkRegister);
                if (h.CfaFixedFpOffset != 0) fp = ValueRule.AtCfa(h.CfaFixedFpOffset);
                else if (idx < n)
                {
                    int w = W(idx++);
                    fp = s390 && h.Version == 2 && (w & 1) != 0 ? ValueRule.InRegister((ushort)(w >> 1)) : ValueRule.AtCfa(w);
                }
                else fp = ValueRule.Unchanged;
                if (idx != n) error = $"{n - idx} data word(s) left over after CFA, RA and FP";
            }
            else if (n < 2) error = $"flexible FDE row with {n} data word(s) (at least the CFA pair is needed)";
            else
            {
                // Flex FDE: (control, offset) pairs for CFA, RA, FP; a lone 0 control word in the RA
                // slot is padding (no RA rule: the fixed offset or the link register applies).
                uint c0 = U(0);
                if ((c0 & 1) == 0) { error = $"CFA control word 0x{c0:x} without reg_p"; kind = SFrameErrorKind.Invalid; }
                else if ((c0 & 4) != 0) { error = $"reserved bit 2 set in CFA control word 0x{c0:x}"; kind = SFrameErrorKind.Invalid; }
                else if ((c0 >> 3) > arch.MaxSFrameRegister) { error = $"CFA register {c0 >> 3} is not one {arch.Name} can provide"; kind = SFrameErrorKind.Invalid; }
                else cfa = new CfaRule((ushort)(c0 >> 3), DecodeCfa(W(1)), Deref: (c0 & 2) != 0);
                idx = 2;
                ra = FixedRa();
                fp = FixedFp();
                if (error is null && idx < n)
                {
                    uint cr = U(idx);
                    if (cr == 0) idx++;
                    else if (idx + 1 >= n) { error = "RA control word without its offset"; kind = SFrameErrorKind.BadAddress; }
                    else if (!TryCtl(cr, W(idx + 1), arch, out ra, out error, out kind)) { }
                    else idx += 2;
                }
                if (error is null && idx < n)
                {
                    if (idx + 1 >= n) { error = "FP control word without its offset"; kind = SFrameErrorKind.BadAddress; }
                    else if (U(idx) == 0) { fp = ValueRule.Unchanged; idx += 2; }
                    else if (!TryCtl(U(idx), W(idx + 1), arch, out fp, out error, out kind)) { }
                    else idx += 2;
                }
                if (error is null && idx != n) { error = $"{n - idx} data word(s) left over after CFA, RA and FP"; kind = SFrameErrorKind.BadAddress; }
            }
            if (error is not null)
            {
                if (strict) Fail(kind, fre.SectionOffset, $"FDE {fde.Index} FRE {j}: {error}");
                return new FrameRule(cfa, ra, fp, flags | FrameRuleFlags.Unusable);
            }
            // RA/FP = CFA + offset without a load cannot come from a well-formed row (the kernel WARNs
            // and stops); keep the row but mark it so the unwinder refuses it.
            if ((ra.Kind == ValueRuleKind.CfaOffset && !ra.Deref) || (fp.Kind == ValueRuleKind.CfaOffset && !fp.Deref))
                flags |= FrameRuleFlags.Unusable;
            return new FrameRule(cfa, ra, fp, flags);
        }

        /// <summary>Control word (LSB first): bit 0 reg_p, bit 1 deref_p, bit 2 reserved (0), bits 3.. DWARF register.</summary>
        private static bool TryCtl(uint ctl, int offset, ArchDescriptor arch, out ValueRule rule, out string? error, out SFrameErrorKind kind)
        {
            rule = default; error = null; kind = SFrameErrorKind.Invalid;
            if ((ctl & 4) != 0) { error = $"reserved bit 2 set in control word 0x{ctl:x}"; return false; }
            bool deref = (ctl & 2) != 0;
            if ((ctl & 1) != 0)
            {
                uint reg = ctl >> 3;
                if (reg > arch.MaxSFrameRegister) { error = $"register {reg} is not one {arch.Name} can provide"; return false; }
                rule = ValueRule.InRegister((ushort)reg, offset, deref);
            }
            else rule = new ValueRule(ValueRuleKind.CfaOffset, 0, offset, deref);
            return true;
        }
    }
}
