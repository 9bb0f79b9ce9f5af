using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TraceUnwind.Text;

/// <summary>Lower-case hex formatting into byte buffers (the kernel's <c>%lx</c> / <c>%016lx</c>), no allocation.</summary>
/// <remarks>
/// Hot paths (a perf script line has two hex numbers per frame) use <see cref="WriteFixed16"/> and
/// <see cref="WriteWithSlack"/>, which turn all 16 digits of a value into text at once (SSSE3 on
/// x86-64, two digits per table step elsewhere) and store them with one 16-byte write.
/// </remarks>
public static class Hex
{
    private static ReadOnlySpan<byte> Digits => "0123456789abcdef"u8;

    // "000102...feff": two digits per byte value.
    private static ReadOnlySpan<byte> Pairs =>
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"u8;

    /// <summary>Number of hex digits of <paramref name="value"/> without leading zeros (1 for 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int DigitCount(ulong value) => (64 - System.Numerics.BitOperations.LeadingZeroCount(value | 1) + 3) >> 2;

    /// <summary>Writes <paramref name="value"/> as hex, zero-padded to <paramref name="minDigits"/>; returns bytes written.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int Write(Span<byte> destination, ulong value, int minDigits = 1)
    {
        int n = Math.Max(DigitCount(value), minDigits);
        if (destination.Length < n) throw new ArgumentException("destination too small", nameof(destination));
        WriteDigits(ref MemoryMarshal.GetReference(destination), value, n);
        return n;
    }

    /// <summary>
    /// Writes exactly 16 bytes: <paramref name="value"/> in hex, right-aligned, the columns before its
    /// digits filled with <paramref name="pad"/> (<c>(byte)'0'</c> gives <c>%016lx</c>, <c>(byte)' '</c>
    /// gives <c>%16lx</c>; 0 is one digit, <c>"               0"</c>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteFixed16(Span<byte> destination, ulong value, byte pad)
    {
        if (destination.Length < 16) throw new ArgumentException("destination too small", nameof(destination));
        WriteFixed16(ref MemoryMarshal.GetReference(destination), value, pad);
    }

    /// <summary>
    /// Writes <paramref name="value"/> in hex without leading zeros, like <see cref="Write"/>, but may use
    /// up to 16 bytes of <paramref name="destination"/> (which must have 16): the bytes after the digits
    /// are unspecified. Returns the number of digits. For writers that own their buffer.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int WriteWithSlack(Span<byte> destination, ulong value)
    {
        if (destination.Length < 16) throw new ArgumentException("destination too small", nameof(destination));
        return WriteWithSlack(ref MemoryMarshal.GetReference(destination), value);
    }

    /// <summary><see cref="WriteFixed16(Span{byte}, ulong, byte)"/> at a reference with 16 writable bytes (unchecked).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void WriteFixed16(ref byte destination, ulong value, byte pad)
    {
        int n = DigitCount(value);
        if (Ssse3.IsSupported)
        {
            var chars = Chars16(value);
            // Columns before the first digit become the pad byte.
            var lead = Vector128.LessThan(Vector128.Create((byte)0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), Vector128.Create((byte)(16 - n)));
            Vector128.ConditionalSelect(lead, Vector128.Create(pad), chars).StoreUnsafe(ref destination);
            return;
        }
        Unsafe.InitBlockUnaligned(ref destination, pad, (uint)(16 - n));
        WriteDigits(ref Unsafe.Add(ref destination, 16 - n), value, n);
    }

    /// <summary><see cref="WriteWithSlack(Span{byte}, ulong)"/> at a reference with 16 writable bytes (unchecked).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int WriteWithSlack(ref byte destination, ulong value)
    {
        int n = DigitCount(value);
        if (Ssse3.IsSupported)
        {
            // Shift the digits to the top so the first one lands in byte 0.
            Chars16(value << ((16 - n) * 4)).StoreUnsafe(ref destination);
            return n;
        }
        WriteDigits(ref destination, value, n);
        return n;
    }

    /// <summary>The 16 hex digits of <paramref name="value"/>, most significant first, as ASCII.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Chars16(ulong value)
    {
        // Byte 0 = the most significant byte; split each byte into its two nibbles, high one first.
        var bytes = Vector128.CreateScalarUnsafe(BinaryPrimitives.ReverseEndianness(value)).AsByte();
        var mask = Vector128.Create((byte)0x0f);
        var high = Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & mask;
        var low = bytes & mask;
        var nibbles = Sse2.UnpackLow(high, low);
        return Ssse3.Shuffle(Vector128.Create((byte)'0', (byte)'1', (byte)'2', (byte)'3', (byte)'4', (byte)'5', (byte)'6', (byte)'7',
            (byte)'8', (byte)'9', (byte)'a', (byte)'b', (byte)'c', (byte)'d', (byte)'e', (byte)'f'), nibbles);
    }

    /// <summary>The low <paramref name="n"/> digits of <paramref name="value"/> (zeros above 16 digits), two per step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteDigits(ref byte destination, ulong value, int n)
    {
        ref byte pairs = ref MemoryMarshal.GetReference(Pairs);
        int i = n;
        while (i >= 2)
        {
            i -= 2;
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref destination, i), Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref pairs, (int)(value & 0xff) * 2)));
            value >>= 8;
        }
        if (i == 1) destination = Unsafe.Add(ref MemoryMarshal.GetReference(Digits), (int)(value & 0xf));
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
