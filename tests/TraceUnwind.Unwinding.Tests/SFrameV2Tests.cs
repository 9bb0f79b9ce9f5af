using System.Buffers.Binary;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// SYNTHETIC SFrame V2: no tool at hand emits V2 any more (gas 2.46+ writes V3 only, the host's
/// binutils 2.40 writes V1), so real V3 sections without flex FDEs are re-encoded in the V2
/// layout (20-byte FDEs with s32 starts and u32 FRE counts, no attribute records; FRE bytes
/// unchanged). The decode must give the same rows and rules, and the objdump layout the same
/// body except the version line.
/// </summary>
public class SFrameV2Tests
{
    /// <summary>Re-encodes a (non-flex) V3 section as V2 at the same address.</summary>
    internal static byte[] ToV2(SFrameSection v3)
    {
        var h = v3.Header;
        bool be = h.IsBigEndian;
        int nf = v3.Fdes.Length;
        var fres = new MemoryStream();
        var fdes = new byte[20 * nf];
        for (int i = 0; i < nf; i++)
        {
            var f = v3.Fdes[i];
            Assert.Equal(SFrameFdeType.Default, f.FdeType);
            int freOff = (int)fres.Length;
            fres.Write(v3.Data.Slice(f.FirstFreOffset, f.FreBytes - SFrameSection.FdeAttrSize));
            var e = fdes.AsSpan(20 * i);
            long start = (long)(f.Start - (v3.Address + 28 + 20UL * (ulong)i)); // PCREL: from the FDE entry
            if (be)
            {
                BinaryPrimitives.WriteInt32BigEndian(e, checked((int)start));
                BinaryPrimitives.WriteUInt32BigEndian(e[4..], f.Size);
                BinaryPrimitives.WriteUInt32BigEndian(e[8..], (uint)freOff);
                BinaryPrimitives.WriteUInt32BigEndian(e[12..], (uint)f.NumFres);
            }
            else
            {
                BinaryPrimitives.WriteInt32LittleEndian(e, checked((int)start));
                BinaryPrimitives.WriteUInt32LittleEndian(e[4..], f.Size);
                BinaryPrimitives.WriteUInt32LittleEndian(e[8..], (uint)freOff);
                BinaryPrimitives.WriteUInt32LittleEndian(e[12..], (uint)f.NumFres);
            }
            e[16] = f.Info;
            e[17] = f.RepSize;
        }
        var outp = new byte[28 + fdes.Length + fres.Length];
        v3.Data[..28].CopyTo(outp);
        outp[2] = 2;
        void U32(int at, uint v) { if (be) BinaryPrimitives.WriteUInt32BigEndian(outp.AsSpan(at), v); else BinaryPrimitives.WriteUInt32LittleEndian(outp.AsSpan(at), v); }
        U32(0x10, (uint)fres.Length);
        U32(0x14, 0);
        U32(0x18, (uint)fdes.Length);
        fdes.CopyTo(outp, 28);
        fres.ToArray().CopyTo(outp, 28 + fdes.Length);
        return outp;
    }

    [Theory]
    [InlineData("x86_64/recursion-O2")]
    [InlineData("x86_64/dynstack-O2-fp")]
    [InlineData("aarch64/dynstack-O0")]
    [InlineData("s390x/recursion-O0")]
    public void V2EncodingGivesTheSameRowsAndDump(string binary)
    {
        var elf = ElfFile.Load(Fixtures.Path("sframe", binary));
        Assert.True(elf.TryGetTextRange(out ulong ts, out ulong te));
        var v3 = SFrameSection.FromElf(elf)!;
        var v2 = SFrameSection.Parse(ToV2(v3), v3.Address, new SFrameParseOptions(true, ts, te));
        Assert.Equal(2, v2.Version);
        Assert.Equal(v3.Fdes.Length, v2.Fdes.Length);
        Assert.Equal(v3.Fres.Length, v2.Fres.Length);
        for (int i = 0; i < v3.Fdes.Length; i++)
        {
            Assert.Equal(v3.Fdes[i].Start, v2.Fdes[i].Start);
            Assert.Equal(v3.Fdes[i].NumFres, v2.Fdes[i].NumFres);
            Assert.Equal(-1, v2.Fdes[i].AttributeOffset);
        }
        for (int i = 0; i < v3.Fres.Length; i++)
        {
            Assert.Equal(v3.Fres[i].StartOffset, v2.Fres[i].StartOffset);
            Assert.Equal(v3.RuleOf(i), v2.RuleOf(i));
        }
        for (ulong pc = ts; pc < te; pc += 3)
        {
            Assert.Equal(v3.TryGetRule(pc, out var r3), v2.TryGetRule(pc, out var r2));
            Assert.Equal(r3, r2);
        }

        static string Dump(SFrameSection s)
        {
            var w = new StringWriter { NewLine = "\n" };
            SFrameDumper.WriteDump(w, s);
            return w.ToString();
        }
        Assert.Equal(Dump(v3).Replace("SFRAME_VERSION_3", "SFRAME_VERSION_2", StringComparison.Ordinal), Dump(v2));
    }

    [Fact]
    public void V2S390xOffsetsCanNameRegisters()
    {
        // SFrame V2 on s390x (before flex FDEs): an odd RA/FP offset is a DWARF register number << 1 | 1.
        var elf = ElfFile.Load(Fixtures.Path("sframe", "s390x", "recursion-O0"));
        var v3 = SFrameSection.FromElf(elf)!;
        var v2bytes = ToV2(v3);
        var v2 = SFrameSection.Parse(v2bytes, v3.Address);
        int k = v2.Fres.ToArray().ToList().FindIndex(f => f.DataWordCount == 3 && f.DataWordSizeCode == 0);
        var fre = v2.Fres[k];
        int wordsAt = fre.SectionOffset + 1 + 1; // ADDR1 start, info
        v2bytes[wordsAt + 1] = (14 << 1) | 1;    // RA in r14
        v2bytes[wordsAt + 2] = (18 << 1) | 1;    // FP in DWARF 18 (f4)
        var patched = SFrameSection.Parse(v2bytes, v3.Address);
        var rule = patched.RuleOf(k);
        Assert.Equal(ValueRule.InRegister(14), rule.Ra);
        Assert.Equal(ValueRule.InRegister(18), rule.Fp);
        var w = new StringWriter { NewLine = "\n" };
        SFrameDumper.WriteDump(w, patched);
        Assert.Contains("r18       r14   ", w.ToString(), StringComparison.Ordinal);
    }
}
