namespace TraceUnwind.Unwinding.SFrame;

/// <summary>FRE start-address width (<c>sfda_func_info</c> bits 0-3).</summary>
public enum SFrameFreType : byte
{
    /// <summary><c>SFRAME_FRE_TYPE_ADDR1</c>: 1-byte start offsets (functions below 256 bytes).</summary>
    Addr1 = 0,
    /// <summary><c>SFRAME_FRE_TYPE_ADDR2</c>: 2-byte start offsets.</summary>
    Addr2 = 1,
    /// <summary><c>SFRAME_FRE_TYPE_ADDR4</c>: 4-byte start offsets.</summary>
    Addr4 = 2,
}

/// <summary>How FRE start offsets are matched (<c>sfda_func_info</c> bit 4).</summary>
public enum SFramePcType : byte
{
    /// <summary><c>SFRAME_V3_FDE_PCTYPE_INC</c>: offsets from the function start.</summary>
    Inc = 0,
    /// <summary><c>SFRAME_V3_FDE_PCTYPE_MASK</c>: offsets inside a block of <c>rep_size</c> bytes that repeats (PLT entries).</summary>
    Mask = 1,
}

/// <summary>How the data words are read (<c>sfda_func_info2</c> bits 0-4; V2 has only Default).</summary>
public enum SFrameFdeType : byte
{
    /// <summary><c>SFRAME_FDE_TYPE_DEFAULT</c>: CFA, RA, FP offsets interpreted per ABI.</summary>
    Default = 0,
    /// <summary><c>SFRAME_FDE_TYPE_FLEX</c>: (control word, offset) pairs naming registers and loads.</summary>
    Flex = 1,
}

/// <summary>
/// One function descriptor, decoded from the V3 index entry (<c>sframe_func_desc_idx_v3</c>:
/// <c>s64 start_offset, u32 size, u32 start_fre_off</c>) and its attribute record in the FRE
/// sub-section (<c>sframe_func_desc_attr_v3</c>: <c>u16 num_fres, u8 info, u8 info2, u8 rep_size</c>),
/// or from a V2 FDE (<c>s32 start, u32 size, u32 fre_off, u32 num_fres, u8 info, u8 rep_size, u16 pad</c>).
/// </summary>
public readonly record struct SFrameFde(
    int Index,
    // Offset of the index entry in the section.
    int EntryOffset,
    // The raw <c>sfdi_func_start_offset</c> (V2: <c>sfde_func_start_address</c>).
    long StartOffset,
    // The function's start as a virtual address.
    ulong Start,
    uint Size,
    // The raw <c>sfdi_func_start_fre_off</c> (from the start of the FRE sub-section).
    uint FreOffset,
    // Offset of the V3 attribute record in the section (-1 for V2).
    int AttributeOffset,
    // Offset of the first FRE in the section.
    int FirstFreOffset,
    int NumFres,
    byte Info,
    byte Info2,
    byte RepSize,
    // Index of the first FRE in <see cref="SFrameSection.Fres"/>.
    int FirstFre,
    // Bytes of this function's FRE data, its attribute record included.
    int FreBytes)
{
    public ulong End => Start + Size;
    public SFrameFreType FreType => (SFrameFreType)(Info & 0xf);
    public SFramePcType PcType => (SFramePcType)((Info >> 4) & 1);
    /// <summary>aarch64: 0 = key A, 1 = key B (<c>SFRAME_AARCH64_PAUTH_KEY_*</c>).</summary>
    public int PauthKey => (Info >> 5) & 1;
    /// <summary>Bit 6 of <c>sfda_func_info</c> (unused; must be clear).</summary>
    public int InfoBit6 => (Info >> 6) & 1;
    /// <summary>The function is a signal trampoline (<c>.cfi_signal_frame</c>, V3 bit 7).</summary>
    public bool IsSignalFrame => (Info & 0x80) != 0;
    public SFrameFdeType FdeType => (SFrameFdeType)(Info2 & 0x1f);
    public int AddressSize => FreType switch { SFrameFreType.Addr1 => 1, SFrameFreType.Addr2 => 2, _ => 4 };
}

/// <summary>
/// One frame row entry: <c>start_address (1/2/4 bytes) info:u8 datawords[N]</c> with the info
/// byte <c>bit 0 base reg (0 FP, 1 SP) | bits 1-4 N | bits 5-6 word size (0: 1, 1: 2, 2: 4 bytes) | bit 7 mangled RA</c>.
/// Its data words are in <see cref="SFrameSection"/> from <see cref="FirstWord"/>.
/// </summary>
public readonly record struct SFrameFre(uint StartOffset, int SectionOffset, byte Info, int FirstWord, int Size)
{
    /// <summary><c>SFRAME_BASE_REG_FP</c> (0) or <c>SFRAME_BASE_REG_SP</c> (1).</summary>
    public int BaseRegId => Info & 1;
    public bool IsSpBased => (Info & 1) != 0;
    public int DataWordCount => (Info >> 1) & 0xf;
    /// <summary>The size code: 0, 1, 2 (3 is invalid).</summary>
    public int DataWordSizeCode => (Info >> 5) & 3;
    public int DataWordBytes => 1 << DataWordSizeCode;
    public bool MangledRa => (Info & 0x80) != 0;
    /// <summary>No data words: RA undefined, the outermost frame.</summary>
    public bool RaUndefined => DataWordCount == 0;
}
