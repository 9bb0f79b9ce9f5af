using System.Buffers.Binary;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// SYNTHETIC encodings the fixtures lack: the compilers only needed 1- and 2-byte FRE start
/// addresses and 1- and 2-byte data words. Real V3 sections (incl. flex FDEs, both byte orders)
/// are re-encoded with every FRE start-address size and every data-word size; the decoded rows,
/// rules and objdump text must not change.
/// </summary>
public class SFrameEncodingTests
{
    /// <summary>Re-encodes <paramref name="s"/> with FRE type <paramref name="freType"/> and data words of size code <paramref name="wordSize"/> (0: 1, 1: 2, 2: 4 bytes).</summary>
    internal static byte[] ReEncode(SFrameSection s, SFrameFreType freType, int wordSize)
    {
        bool be = s.Header.IsBigEndian;
        int addrBytes = freType switch { SFrameFreType.Addr1 => 1, SFrameFreType.Addr2 => 2, _ => 4 };
        int wordBytes = 1 << wordSize;
        var fres = new List<byte>();
        var starts = new uint[s.Fdes.Length];
        void Put(long v, int bytes)
        {
            Span<byte> b = stackalloc byte[8];
            if (be) BinaryPrimitives.WriteInt64BigEndian(b, v); else BinaryPrimitives.WriteInt64LittleEndian(b, v);
            fres.AddRange(be ? b[(8 - bytes)..].ToArray() : b[..bytes].ToArray());
        }
        for (int i = 0; i < s.Fdes.Length; i++)
        {
            var f = s.Fdes[i];
            starts[i] = (uint)fres.Count;
            Put(f.NumFres, 2);
            fres.Add((byte)((f.Info & 0xf0) | (int)freType));
            fres.Add(f.Info2);
            fres.Add(f.RepSize);
            foreach (var fre in s.FresOf(f))
            {
                Put(fre.StartOffset, addrBytes);
                fres.Add((byte)((fre.Info & 0x9f) | (wordSize << 5)));
                int n = fre.DataWordCount;
                for (int w = 0; w < n; w++)
                {
                    // Flex control words are unsigned: 0, 2, then 3 after RA padding, else 4.
                    bool ctl = f.FdeType == SFrameFdeType.Flex && (w == 0 || w == 2 || w == (n > 2 && s.UWord(fre, 2) == 0 ? 3 : 4));
                    Put(ctl ? s.UWord(fre, w) : s.Word(fre, w), wordBytes);
                }
            }
        }
        int hdr = s.Header.Size;
        var outp = new byte[hdr + 16 * s.Fdes.Length + fres.Count];
        s.Data[..hdr].CopyTo(outp);
        void U32(int at, uint v) { if (be) BinaryPrimitives.WriteUInt32BigEndian(outp.AsSpan(at), v); else BinaryPrimitives.WriteUInt32LittleEndian(outp.AsSpan(at), v); }
        U32(0x10, (uint)fres.Count);
        U32(0x14, 0);
        U32(0x18, (uint)(16 * s.Fdes.Length));
        for (int i = 0; i < s.Fdes.Length; i++)
        {
            var f = s.Fdes[i];
            int at = hdr + 16 * i;
            long startOff = (long)(f.Start - (s.Address + (ulong)at));
            if (be) BinaryPrimitives.WriteInt64BigEndian(outp.AsSpan(at), startOff); else BinaryPrimitives.WriteInt64LittleEndian(outp.AsSpan(at), startOff);
            U32(at + 8, f.Size);
            U32(at + 12, starts[i]);
        }
        fres.CopyTo(outp, hdr + 16 * s.Fdes.Length);
        return outp;
    }

    public static TheoryData<string, SFrameFreType, int> Cases()
    {
        var d = new TheoryData<string, SFrameFreType, int>();
        foreach (var bin in new[] { "x86_64/stackcap", "s390x/leaf-O2", "s390x/dynstack-O2", "aarch64/dynstack-O2" })
            foreach (var t in new[] { SFrameFreType.Addr2, SFrameFreType.Addr4 })
                foreach (int w in new[] { 1, 2 })
                    d.Add(bin, t, w);
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void WiderEncodingsDecodeTheSame(string binary, SFrameFreType freType, int wordSize)
    {
        var elf = ElfFile.Load(Fixtures.Path("sframe", binary));
        Assert.True(elf.TryGetTextRange(out ulong ts, out ulong te));
        var orig = SFrameSection.FromElf(elf)!;
        var wide = SFrameSection.Parse(ReEncode(orig, freType, wordSize), orig.Address, new SFrameParseOptions(true, ts, te));
        Assert.Equal(orig.Fres.Length, wide.Fres.Length);
        for (int i = 0; i < orig.Fdes.Length; i++)
        {
            Assert.Equal(freType, wide.Fdes[i].FreType);
            Assert.Equal(orig.Fdes[i].Start, wide.Fdes[i].Start);
        }
        for (int i = 0; i < orig.Fres.Length; i++)
        {
            Assert.Equal(1 << wordSize, wide.Fres[i].DataWordBytes);
            Assert.Equal(orig.Fres[i].StartOffset, wide.Fres[i].StartOffset);
            Assert.Equal(orig.RuleOf(i), wide.RuleOf(i));
        }
        var a = new StringWriter { NewLine = "\n" };
        var b = new StringWriter { NewLine = "\n" };
        SFrameDumper.WriteDump(a, orig);
        SFrameDumper.WriteDump(b, wide);
        Assert.Equal(a.ToString(), b.ToString());
    }
}
