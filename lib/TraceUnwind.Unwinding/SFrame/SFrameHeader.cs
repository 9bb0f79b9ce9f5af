using System.Buffers.Binary;

namespace TraceUnwind.Unwinding.SFrame;

/// <summary><c>sfh_abi_arch</c> (sframe.h <c>SFRAME_ABI_*</c>).</summary>
public enum SFrameAbi : byte
{
    Unknown = 0,
    AArch64BigEndian = 1,
    AArch64LittleEndian = 2,
    Amd64LittleEndian = 3,
    S390xBigEndian = 4,
}

/// <summary>Header flag bits (<c>sfp_flags</c>).</summary>
[Flags]
public enum SFrameFlags : byte
{
    None = 0,
    /// <summary><c>SFRAME_F_FDE_SORTED</c>: the FDE index is sorted by function start.</summary>
    FdeSorted = 0x1,
    /// <summary><c>SFRAME_F_FRAME_POINTER</c>: V2 only (removed in V3).</summary>
    FramePointer = 0x2,
    /// <summary><c>SFRAME_F_FDE_FUNC_START_PCREL</c>: function starts are relative to the FDE entry.</summary>
    FdeFuncStartPcRel = 0x4,
}

/// <summary>
/// The SFrame header (sframe-spec.texi "SFrame Header"; 28 bytes + <c>sfh_auxhdr_len</c>, all
/// fields in the target's byte order, detected from the magic):
/// <code>
/// 0x00 u16 sfp_magic (0xdee2)   0x02 u8 sfp_version   0x03 u8 sfp_flags
/// 0x04 u8  sfh_abi_arch         0x05 s8 sfh_cfa_fixed_fp_offset   0x06 s8 sfh_cfa_fixed_ra_offset
/// 0x07 u8  sfh_auxhdr_len       0x08 u32 sfh_num_fdes   0x0c u32 sfh_num_fres
/// 0x10 u32 sfh_fre_len          0x14 u32 sfh_fdeoff     0x18 u32 sfh_freoff
/// </code>
/// <c>sfh_fdeoff</c> and <c>sfh_freoff</c> count from the end of the header (incl. the aux header).
/// </summary>
public readonly record struct SFrameHeader(
    ushort Magic,
    byte Version,
    SFrameFlags Flags,
    SFrameAbi Abi,
    sbyte CfaFixedFpOffset,
    sbyte CfaFixedRaOffset,
    byte AuxHeaderLength,
    uint NumFdes,
    uint NumFres,
    uint FreLength,
    uint FdeOffset,
    uint FreOffset,
    bool IsBigEndian)
{
    public const ushort MagicValue = 0xdee2;
    public const int FixedSize = 28;

    /// <summary>Header size incl. the auxiliary header.</summary>
    public int Size => FixedSize + AuxHeaderLength;

    /// <summary>Bytes the data spans: <c>header + sfh_freoff + sfh_fre_len</c> (64-bit sum: cannot wrap).</summary>
    public long DataLength => (long)Size + FreOffset + FreLength;

    /// <summary>
    /// Reads the header from the start of <paramref name="data"/>, choosing the byte order from the
    /// magic (<c>e2 de</c> little endian, <c>de e2</c> big endian). False when fewer than 28
    /// bytes are there or the magic matches neither order.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> data, out SFrameHeader header)
    {
        header = default;
        if (data.Length < FixedSize) return false;
        bool be;
        if (data[0] == 0xe2 && data[1] == 0xde) be = false;
        else if (data[0] == 0xde && data[1] == 0xe2) be = true;
        else return false;
        header = new SFrameHeader(MagicValue, data[2], (SFrameFlags)data[3], (SFrameAbi)data[4],
            unchecked((sbyte)data[5]), unchecked((sbyte)data[6]), data[7],
            U32(data, 0x08, be), U32(data, 0x0c, be), U32(data, 0x10, be), U32(data, 0x14, be), U32(data, 0x18, be), be);
        return true;
    }

    private static uint U32(ReadOnlySpan<byte> data, int at, bool be) =>
        be ? BinaryPrimitives.ReadUInt32BigEndian(data[at..]) : BinaryPrimitives.ReadUInt32LittleEndian(data[at..]);

    /// <summary>The data length the header at the start of <paramref name="data"/> declares, if it can be read and fits in an int.</summary>
    public static bool TryGetDataLength(ReadOnlySpan<byte> data, out int length)
    {
        length = 0;
        if (!TryRead(data, out var h) || h.DataLength > int.MaxValue) return false;
        length = (int)h.DataLength;
        return true;
    }

    /// <summary>sframe.h's name without the prefix: <c>AMD64_ENDIAN_LITTLE</c>, ...</summary>
    public string AbiName => Abi switch
    {
        SFrameAbi.AArch64BigEndian => "AARCH64_ENDIAN_BIG",
        SFrameAbi.AArch64LittleEndian => "AARCH64_ENDIAN_LITTLE",
        SFrameAbi.Amd64LittleEndian => "AMD64_ENDIAN_LITTLE",
        SFrameAbi.S390xBigEndian => "S390X_ENDIAN_BIG",
        _ => $"UNKNOWN_{(byte)Abi}",
    };
}
