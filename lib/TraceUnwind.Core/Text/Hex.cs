using System.Runtime.CompilerServices;

namespace TraceUnwind.Text;

/// <summary>Lower-case hex formatting into byte buffers (the kernel's <c>%lx</c> / <c>%016lx</c>), no allocation.</summary>
public static class Hex
{
    private static ReadOnlySpan<byte> Digits => "0123456789abcdef"u8;

    /// <summary>Number of hex digits of <paramref name="value"/> without leading zeros (1 for 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int DigitCount(ulong value) => value == 0 ? 1 : (64 - System.Numerics.BitOperations.LeadingZeroCount(value) + 3) >> 2;

    /// <summary>Writes <paramref name="value"/> as hex, zero-padded to <paramref name="minDigits"/>; returns bytes written.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int Write(Span<byte> destination, ulong value, int minDigits = 1)
    {
        int n = Math.Max(DigitCount(value), minDigits);
        if (destination.Length < n) throw new ArgumentException("destination too small", nameof(destination));
        for (int i = n - 1; i >= 0; i--)
        {
            destination[i] = Digits[(int)(value & 0xf)];
            value >>= 4;
        }
        return n;
    }

    /// <summary>Parses lower- or upper-case hex digits; false on anything else or overflow.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryParse(ReadOnlySpan<byte> text, out ulong value)
    {
        value = 0;
        if (text.IsEmpty || text.Length > 16) return false;
        foreach (byte b in text)
        {
            int d = b switch
            {
                >= (byte)'0' and <= (byte)'9' => b - '0',
                >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
                >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
                _ => -1,
            };
            if (d < 0) return false;
            value = (value << 4) | (uint)d;
        }
        return true;
    }
}
