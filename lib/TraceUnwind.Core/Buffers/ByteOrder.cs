using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace TraceUnwind.Buffers;

/// <summary>
/// Byte order of an input, chosen once per file (perf's <c>PERFILE2</c> vs <c>2ELIFREP</c>,
/// ELF's EI_DATA, SFrame's magic) and passed as a struct type argument so the JIT
/// specializes every reader for it: no per-field branch (LibObjectFile's ElfDecoderDirect/Swap).
/// </summary>
public interface IByteOrder
{
    static abstract bool IsBigEndian { get; }
    static abstract ushort UInt16(ReadOnlySpan<byte> source);
    static abstract uint UInt32(ReadOnlySpan<byte> source);
    static abstract ulong UInt64(ReadOnlySpan<byte> source);
}

/// <summary>Little-endian (x86-64, aarch64 LE).</summary>
public readonly struct LittleEndian : IByteOrder
{
    public static bool IsBigEndian => false;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort UInt16(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt16LittleEndian(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint UInt32(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt32LittleEndian(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong UInt64(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt64LittleEndian(source);
}

/// <summary>Big-endian (s390x, aarch64 BE, a <c>2ELIFREP</c> perf.data).</summary>
public readonly struct BigEndian : IByteOrder
{
    public static bool IsBigEndian => true;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort UInt16(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt16BigEndian(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint UInt32(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt32BigEndian(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong UInt64(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt64BigEndian(source);
}
