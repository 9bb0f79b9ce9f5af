using TraceUnwind.Text;

namespace TraceUnwind.Core.Tests;

/// <summary>The fast hex paths give what <c>ulong.ToString("x")</c> / printf give, for every digit count.</summary>
public class HexTests
{
    private static IEnumerable<ulong> Values()
    {
        yield return 0;
        yield return ulong.MaxValue;
        for (int bits = 0; bits < 64; bits++)
        {
            yield return 1UL << bits;
            yield return (1UL << bits) - 1;
            yield return ((1UL << bits) - 1) ^ 0x5a5a5a5a5a5a5a5aUL >> (63 - bits);
        }
        var rng = new Random(7);
        for (int i = 0; i < 2000; i++)
            yield return (ulong)rng.NextInt64() >> rng.Next(64) | (rng.Next(2) == 0 ? 0 : 1UL << 63);
    }

    [Fact]
    public void WriteMatchesToStringAndTouchesOnlyItsDigits()
    {
        Span<byte> buf = stackalloc byte[40];
        foreach (ulong v in Values())
        {
            foreach (int min in new[] { 1, 8, 16, 20 })
            {
                buf.Fill((byte)'#');
                int n = Hex.Write(buf, v, min);
                string want = v.ToString("x").PadLeft(min, '0');
                Assert.Equal(want, System.Text.Encoding.ASCII.GetString(buf[..n]));
                Assert.Equal(Math.Max(min, v.ToString("x").Length), n);
                Assert.True(buf[n..].IndexOfAnyExcept((byte)'#') < 0, $"bytes after the digits of {v:x} changed");
            }
        }
    }

    [Fact]
    public void WriteFixed16PadsToSixteenColumns()
    {
        Span<byte> buf = stackalloc byte[20];
        foreach (ulong v in Values())
        {
            buf.Fill((byte)'#');
            Hex.WriteFixed16(buf, v, (byte)' ');
            Assert.Equal(v.ToString("x").PadLeft(16), System.Text.Encoding.ASCII.GetString(buf[..16]));
            Assert.Equal("####", System.Text.Encoding.ASCII.GetString(buf[16..]));
            Hex.WriteFixed16(buf, v, (byte)'0');
            Assert.Equal(v.ToString("x16"), System.Text.Encoding.ASCII.GetString(buf[..16]));
        }
    }

    [Fact]
    public void WriteWithSlackGivesTheDigits()
    {
        Span<byte> buf = stackalloc byte[16];
        foreach (ulong v in Values())
        {
            int n = Hex.WriteWithSlack(buf, v);
            Assert.Equal(v.ToString("x"), System.Text.Encoding.ASCII.GetString(buf[..n]));
            Assert.Equal(Hex.DigitCount(v), n);
        }
        Assert.Throws<ArgumentException>(() => Hex.WriteWithSlack(new byte[15], 1));
        Assert.Throws<ArgumentException>(() => Hex.WriteFixed16(new byte[15], 1, (byte)' '));
        Assert.Throws<ArgumentException>(() => Hex.Write(new byte[3], 0x1234));
    }
}
