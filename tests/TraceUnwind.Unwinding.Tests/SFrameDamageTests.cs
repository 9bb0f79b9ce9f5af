using System.Buffers.Binary;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// Real sections from fixtures/sframe/, each damaged so that exactly one validation rule
/// (sframe.md §7.1-7.4) is broken: the parser must refuse with the kernel's class and name the
/// offset. Then random damage: only <see cref="SFrameException"/>, never a crash or a read out of range.
/// </summary>
public class SFrameDamageTests
{
    private sealed record Subject(byte[] Data, ulong Address, ulong TextStart, ulong TextEnd, SFrameSection Clean, bool BigEndian);

    private static Subject Load(string binary)
    {
        var elf = ElfFile.Load(Fixtures.Path("sframe", binary));
        Assert.True(elf.TryFindSFrame(out var loc));
        Assert.True(elf.TryGetTextRange(out ulong ts, out ulong te));
        byte[] data = elf.GetSFrameData(loc).ToArray();
        var clean = SFrameSection.Parse(data, loc.Address, new SFrameParseOptions(true, ts, te));
        return new Subject(data, loc.Address, ts, te, clean, elf.IsBigEndian);
    }

    private static SFrameException Refused(Subject s, byte[] damaged) =>
        Assert.Throws<SFrameException>(() => SFrameSection.Parse(damaged, s.Address, new SFrameParseOptions(true, s.TextStart, s.TextEnd)));

    private static void Put16(Subject s, byte[] d, int at, ushort v)
    {
        if (s.BigEndian) BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(at), v); else BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(at), v);
    }

    private static void Put32(Subject s, byte[] d, int at, uint v)
    {
        if (s.BigEndian) BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(at), v); else BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(at), v);
    }

    private static void Put64(Subject s, byte[] d, int at, long v)
    {
        if (s.BigEndian) BinaryPrimitives.WriteInt64BigEndian(d.AsSpan(at), v); else BinaryPrimitives.WriteInt64LittleEndian(d.AsSpan(at), v);
    }

    /// <summary>Index of the first FRE (in the section's FRE array) of the first FDE matching <paramref name="pick"/>.</summary>
    private static SFrameFde Fde(Subject s, Func<SFrameFde, bool> pick)
    {
        foreach (var f in s.Clean.Fdes) if (pick(f)) return f;
        throw new InvalidOperationException("no such FDE in the fixture");
    }

    private static SFrameFre Fre(Subject s, SFrameFde fde, int j) => s.Clean.Fres[fde.FirstFre + j];

    // name, fixture, damage, expected class, expected section offset (-1: not checked)
    public static TheoryData<string> Cases() => new(Damages.Keys.Order(StringComparer.Ordinal));

    private static readonly Dictionary<string, (string Binary, Func<Subject, byte[], int> Damage, SFrameErrorKind Kind)> Damages = new()
    {
        // ---- header (kernel sframe_read_header, -EINVAL "bad/unsupported sframe header")
        ["header.magic"] = ("x86_64/recursion-O2", (s, d) => { d[0] = 0x12; return 0; }, SFrameErrorKind.Invalid),
        ["header.version-1"] = ("x86_64/recursion-O2", (s, d) => { d[2] = 1; return 2; }, SFrameErrorKind.Invalid),
        ["header.version-4"] = ("s390x/leaf-O2", (s, d) => { d[2] = 4; return 2; }, SFrameErrorKind.Invalid),
        ["header.not-sorted"] = ("aarch64/leaf-O2", (s, d) => { d[3] &= 0xfe; return 3; }, SFrameErrorKind.Invalid),
        ["header.not-pcrel"] = ("x86_64/recursion-O2", (s, d) => { d[3] &= 0xfb; return 3; }, SFrameErrorKind.Invalid),
        ["header.reserved-flag"] = ("x86_64/recursion-O2", (s, d) => { d[3] |= 0x2; return 3; }, SFrameErrorKind.Invalid),
        ["header.unknown-abi"] = ("x86_64/recursion-O2", (s, d) => { d[4] = 9; return 4; }, SFrameErrorKind.Invalid),
        ["header.abi-byte-order"] = ("x86_64/recursion-O2", (s, d) => { d[4] = (byte)SFrameAbi.S390xBigEndian; return 0; }, SFrameErrorKind.Invalid),
        ["header.auxhdr"] = ("s390x/leaf-O2", (s, d) => { d[7] = 4; return 7; }, SFrameErrorKind.Invalid),
        ["header.no-fdes"] = ("x86_64/recursion-O2", (s, d) => { Put32(s, d, 8, 0); return 8; }, SFrameErrorKind.Invalid),
        ["header.no-fres"] = ("aarch64/leaf-O2", (s, d) => { Put32(s, d, 12, 0); return 8; }, SFrameErrorKind.Invalid),
        ["header.fres-overlap-fdes"] = ("x86_64/recursion-O2", (s, d) => { Put32(s, d, 0x18, 8); return 0x14; }, SFrameErrorKind.Invalid),
        ["header.fre-len-past-end"] = ("s390x/leaf-O2", (s, d) => { Put32(s, d, 0x10, 0x10000); return 0x10; }, SFrameErrorKind.Invalid),
        ["header.fre-count-cap"] = ("x86_64/recursion-O2", (s, d) => { Put32(s, d, 0x0c, 0x7fffffff); return 0x0c; }, SFrameErrorKind.Invalid),
        ["header.truncated"] = ("x86_64/recursion-O2", (s, d) => -2, SFrameErrorKind.BadAddress),

        // ---- FDEs (kernel __read_fde, validation pass)
        ["fde.not-sorted"] = ("x86_64/recursion-O2", (s, d) =>
        {
            // FDE 1 starts where FDE 0 starts.
            var f0 = s.Clean.Fdes[0]; var f1 = s.Clean.Fdes[1];
            Put64(s, d, f1.EntryOffset, f0.StartOffset - (f1.EntryOffset - f0.EntryOffset));
            return f1.EntryOffset;
        }, SFrameErrorKind.BadAddress),
        ["fde.start-outside-text"] = ("aarch64/recursion-O2", (s, d) =>
        {
            var f0 = s.Clean.Fdes[0];
            Put64(s, d, f0.EntryOffset, f0.StartOffset - 0x100000);
            return f0.EntryOffset;
        }, SFrameErrorKind.Invalid),
        ["fde.end-beyond-text"] = ("x86_64/recursion-O2", (s, d) =>
        {
            var last = s.Clean.Fdes[^1];
            Put32(s, d, last.EntryOffset + 8, 0x100000);
            return last.EntryOffset + 8;
        }, SFrameErrorKind.Invalid),
        ["fde.attr-outside-fres"] = ("s390x/recursion-O2", (s, d) =>
        {
            var f = s.Clean.Fdes[1];
            Put32(s, d, f.EntryOffset + 12, s.Clean.Header.FreLength - 2);
            return f.EntryOffset + 12;
        }, SFrameErrorKind.Invalid),
        ["fde.fre-type-3"] = ("x86_64/recursion-O2", (s, d) =>
        {
            var f = s.Clean.Fdes[3];
            d[f.AttributeOffset + 2] = (byte)((d[f.AttributeOffset + 2] & 0xf0) | 3);
            return f.AttributeOffset + 2;
        }, SFrameErrorKind.BadAddress),
        ["fde.fde-type-2"] = ("s390x/leaf-O2", (s, d) =>
        {
            var f = s.Clean.Fdes[2];
            d[f.AttributeOffset + 3] = 2;
            return f.AttributeOffset + 3;
        }, SFrameErrorKind.BadAddress),
        ["fde.reserved-info-bit"] = ("aarch64/dynstack-O2", (s, d) =>
        {
            var f = s.Clean.Fdes[0];
            d[f.AttributeOffset + 2] |= 0x40;
            return f.AttributeOffset + 2;
        }, SFrameErrorKind.Invalid),
        ["fde.reserved-info2-bits"] = ("x86_64/stackcap", (s, d) =>
        {
            var f = s.Clean.Fdes[0];
            d[f.AttributeOffset + 3] |= 0x80;
            return f.AttributeOffset + 2;
        }, SFrameErrorKind.Invalid),
        ["fde.mask-rep-size-0"] = ("x86_64/recursion-O2", (s, d) =>
        {
            var f = Fde(s, f => f.PcType == SFramePcType.Mask);
            d[f.AttributeOffset + 4] = 0;
            return f.AttributeOffset + 4;
        }, SFrameErrorKind.Invalid),
        ["fde.fres-exceed-size"] = ("x86_64/recursion-O2", (s, d) =>
        {
            var f = Fde(s, f => f.Size == 8);
            Put16(s, d, f.AttributeOffset, 9);
            return f.AttributeOffset;
        }, SFrameErrorKind.Invalid),
        ["fde.fres-exceed-header"] = ("x86_64/recursion-O2", (s, d) =>
        {
            var f = s.Clean.Fdes[^1];
            Put16(s, d, f.AttributeOffset, (ushort)(s.Clean.Header.NumFres + 1));
            return f.AttributeOffset;
        }, SFrameErrorKind.Invalid),

        // ---- FREs (kernel __read_fre)
        ["fre.start-beyond-function"] = ("x86_64/recursion-O2", (s, d) =>
        {
            var f = s.Clean.Fdes[3];
            var fre = Fre(s, f, f.NumFres - 1);
            d[fre.SectionOffset] = (byte)(f.Size + 1);
            return fre.SectionOffset;
        }, SFrameErrorKind.BadAddress),
        ["fre.start-not-increasing"] = ("aarch64/recursion-O2", (s, d) =>
        {
            var f = Fde(s, f => f.NumFres >= 2);
            var fre = Fre(s, f, 1);
            d[fre.SectionOffset] = 0;
            return fre.SectionOffset;
        }, SFrameErrorKind.BadAddress),
        ["fre.word-size-3"] = ("s390x/leaf-O2", (s, d) =>
        {
            var f = s.Clean.Fdes[0];
            var fre = Fre(s, f, 1);
            d[fre.SectionOffset + 1] |= 0x60;
            return fre.SectionOffset + 1;
        }, SFrameErrorKind.BadAddress),
        ["fre.words-past-end"] = ("x86_64/recursion-O2", (s, d) =>
        {
            // The FRE that ends the sub-section claims 15 words.
            var fre = s.Clean.Fres.ToArray().MaxBy(f => f.SectionOffset);
            d[fre.SectionOffset + 1] = (byte)((d[fre.SectionOffset + 1] & 0xe1) | (15 << 1));
            return fre.SectionOffset;
        }, SFrameErrorKind.BadAddress),
        ["fre.words-left-over"] = ("x86_64/recursion-O2", (s, d) =>
        {
            // A 2-word AMD64 row (CFA, FP) claiming 3: the third is left over.
            var fre = s.Clean.Fres.ToArray().First(f => f.DataWordCount == 2);
            d[fre.SectionOffset + 1] = (byte)((d[fre.SectionOffset + 1] & 0xe1) | (3 << 1));
            return fre.SectionOffset;
        }, SFrameErrorKind.BadAddress),
        ["fre.aarch64-words-left-over"] = ("aarch64/recursion-O0", (s, d) =>
        {
            var fre = s.Clean.Fres.ToArray().First(f => f.DataWordCount == 3);
            d[fre.SectionOffset + 1] = (byte)((d[fre.SectionOffset + 1] & 0xe1) | (4 << 1));
            return fre.SectionOffset;
        }, SFrameErrorKind.BadAddress),
        ["flex.one-word"] = ("x86_64/stackcap", (s, d) =>
        {
            var f = Fde(s, f => f.FdeType == SFrameFdeType.Flex);
            var fre = Fre(s, f, 1); // r10+0: words (81, 0)
            d[fre.SectionOffset + 2] = (byte)((d[fre.SectionOffset + 2] & 0xe1) | (1 << 1));
            return fre.SectionOffset;
        }, SFrameErrorKind.BadAddress),
        ["flex.cfa-without-reg"] = ("x86_64/stackcap", (s, d) =>
        {
            var f = Fde(s, f => f.FdeType == SFrameFdeType.Flex);
            var fre = Fre(s, f, 1);
            d[fre.SectionOffset + 3] &= 0xfe;
            return fre.SectionOffset;
        }, SFrameErrorKind.Invalid),
        ["flex.reserved-ctl-bit"] = ("s390x/leaf-O2", (s, d) =>
        {
            var f = Fde(s, f => f.FdeType == SFrameFdeType.Flex);
            var fre = Fre(s, f, 1); // words 121, 0, 0, 145, 0
            d[fre.SectionOffset + 2 + 3] |= 0x4;
            return fre.SectionOffset;
        }, SFrameErrorKind.Invalid),
        ["flex.unsupported-register"] = ("x86_64/stackcap", (s, d) =>
        {
            var f = Fde(s, f => f.FdeType == SFrameFdeType.Flex);
            var fre = Fre(s, f, 1);
            d[fre.SectionOffset + 3] = (byte)((20 << 3) | 1); // DWARF 20 is no x86-64 GPR
            return fre.SectionOffset;
        }, SFrameErrorKind.Invalid),
        ["flex.ra-control-without-offset"] = ("s390x/leaf-O2", (s, d) =>
        {
            var f = Fde(s, f => f.FdeType == SFrameFdeType.Flex);
            var fre = Fre(s, f, 0); // (121, 0): claim 3 words, the third (next FRE's start byte 0x10) is an RA control word alone
            d[fre.SectionOffset + 1] = (byte)((d[fre.SectionOffset + 1] & 0xe1) | (3 << 1));
            return fre.SectionOffset;
        }, SFrameErrorKind.BadAddress),
        ["flex.words-left-over"] = ("s390x/leaf-O2", (s, d) =>
        {
            var f = Fde(s, f => f.FdeType == SFrameFdeType.Flex);
            var fre = Fre(s, f, 1); // (121, 0, 0, 145, 0) = CFA pair, RA padding, FP pair: a sixth word is left over
            d[fre.SectionOffset + 1] = (byte)((d[fre.SectionOffset + 1] & 0xe1) | (6 << 1));
            return fre.SectionOffset;
        }, SFrameErrorKind.BadAddress),
    };

    // A phrase each refusal's message must contain: the rule that fired is the one broken.
    private static readonly Dictionary<string, string> expectWords = new()
    {
        ["header.magic"] = "bad magic",
        ["header.version-1"] = "version 1",
        ["header.version-4"] = "version 4",
        ["header.not-sorted"] = "SFRAME_F_FDE_SORTED",
        ["header.not-pcrel"] = "SFRAME_F_FDE_FUNC_START_PCREL",
        ["header.reserved-flag"] = "reserved flag bits",
        ["header.unknown-abi"] = "unknown ABI",
        ["header.abi-byte-order"] = "little-endian magic",
        ["header.auxhdr"] = "auxiliary header",
        ["header.no-fdes"] = "0 FDEs",
        ["header.no-fres"] = "0 FREs",
        ["header.fres-overlap-fdes"] = "runs into the FRE sub-section",
        ["header.fre-len-past-end"] = "ends past the section",
        ["header.fre-count-cap"] = "cannot fit",
        ["header.truncated"] = "cannot hold",
        ["fde.not-sorted"] = "not sorted",
        ["fde.start-outside-text"] = "outside the text",
        ["fde.end-beyond-text"] = "beyond the text end",
        ["fde.attr-outside-fres"] = "attribute record",
        ["fde.fre-type-3"] = "FRE type 3",
        ["fde.fde-type-2"] = "FDE type 2",
        ["fde.reserved-info-bit"] = "reserved bits",
        ["fde.reserved-info2-bits"] = "reserved bits",
        ["fde.mask-rep-size-0"] = "rep_size 0",
        ["fde.fres-exceed-size"] = "each FRE covers",
        ["fde.fres-exceed-header"] = "FDEs claim",
        ["fre.start-beyond-function"] = "beyond the",
        ["fre.start-not-increasing"] = "not above the previous",
        ["fre.word-size-3"] = "size code 3",
        ["fre.words-past-end"] = "run past",
        ["fre.words-left-over"] = "left over",
        ["fre.aarch64-words-left-over"] = "left over",
        ["flex.one-word"] = "at least the CFA pair",
        ["flex.cfa-without-reg"] = "without reg_p",
        ["flex.reserved-ctl-bit"] = "reserved bit 2",
        ["flex.unsupported-register"] = "can provide",
        ["flex.ra-control-without-offset"] = "without its offset",
        ["flex.words-left-over"] = "left over",
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void OneRuleBroken(string name)
    {
        var (binary, damage, kind) = Damages[name];
        var s = Load(binary);
        var d = (byte[])s.Data.Clone();
        int at = damage(s, d);
        if (at == -2) d = d[..20];
        var e = Refused(s, d);
        Assert.True(kind == e.Kind, e.Message);
        if (at >= 0) Assert.Equal(at, e.SectionOffset);
        Assert.Contains(".sframe+0x", e.Message, StringComparison.Ordinal);
        Assert.Contains(expectWords[name], e.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void LenientParseStillDecodesAnUnsortedRefusedSection()
    {
        var s = Load("x86_64/recursion-O2");
        var d = (byte[])s.Data.Clone();
        d[3] &= 0xfe; // not sorted: the kernel refuses it, objdump still dumps it
        Refused(s, d);
        var lenient = SFrameSection.Parse(d, s.Address, new SFrameParseOptions(Validate: false));
        Assert.False(lenient.IsValidated);
        Assert.Equal(s.Clean.Fres.Length, lenient.Fres.Length);
    }

    [Fact]
    public void LookupsOutsideFunctionsAreNoEntry()
    {
        var s = Load("x86_64/recursion-O2");
        var first = s.Clean.Fdes[0];
        Assert.False(s.Clean.TryGetRule(first.Start - 1, out _));
        Assert.True(s.Clean.TryGetRule(first.Start, out _));
        // A gap between two functions (0x1060 + 87 .. 0x11b0 in the dump).
        var f3 = s.Clean.Fdes[3];
        Assert.True(s.Clean.TryGetRule(f3.End - 1, out _));
        Assert.False(s.Clean.TryGetRule(f3.End, out _));
        Assert.False(s.Clean.TryGetRule(s.Clean.Fdes[^1].End + 0x1000, out _));
    }

    /// <summary>
    /// Random damage (seeded, so failures reproduce): every fixture section with 1-8 random bytes
    /// replaced, parsed strictly and leniently, then looked up and dumped. Only SFrameException
    /// may come out; everything else (IndexOutOfRange, Overflow, ArgumentOutOfRange, ...) is a bug.
    /// </summary>
    [Theory]
    [InlineData("x86_64/stackcap")]
    [InlineData("x86_64/recursion-O2")]
    [InlineData("aarch64/dynstack-O0")]
    [InlineData("s390x/leaf-O2")]
    [InlineData("s390x/dynstack-O2")]
    public void RandomDamageOnlyRaisesSFrameException(string binary)
    {
        var s = Load(binary);
        var rng = new Random(12345);
        int refusedStrict = 0;
        for (int iter = 0; iter < 3000; iter++)
        {
            var d = (byte[])s.Data.Clone();
            int changes = rng.Next(1, 9);
            for (int k = 0; k < changes; k++) d[rng.Next(d.Length)] = (byte)rng.Next(256);
            if (rng.Next(10) == 0) d = d[..rng.Next(d.Length)];
            foreach (bool validate in new[] { true, false })
            {
                SFrameSection sec;
                try { sec = SFrameSection.Parse(d, s.Address, new SFrameParseOptions(validate, s.TextStart, s.TextEnd)); }
                catch (SFrameException) { if (validate) refusedStrict++; continue; }
                for (ulong pc = s.TextStart; pc < s.TextEnd; pc += 7) sec.TryGetRule(pc, out _);
                using var sw = new StringWriter();
                SFrameDumper.WriteDump(sw, sec);
            }
        }
        // The damage must actually hit checks (guards against a test that never exercises them).
        Assert.InRange(refusedStrict, 300, 3000);
    }
}
