namespace TraceUnwind.Unwinding.Elf;

/// <summary>ELF constants this reader uses (System V ABI gABI, <c>include/elf/common.h</c>).</summary>
public static class ElfConstants
{
    public const byte ElfClass32 = 1, ElfClass64 = 2;
    public const byte ElfData2Lsb = 1, ElfData2Msb = 2;

    public const ushort EtRel = 1, EtExec = 2, EtDyn = 3, EtCore = 4;

    public const ushort EmS390 = 22, EmArm = 40, EmX86_64 = 62, EmAArch64 = 183, Em386 = 3;

    public const uint PtLoad = 1, PtDynamic = 2, PtInterp = 3, PtNote = 4, PtPhdr = 6;
    /// <summary><c>PT_GNU_EH_FRAME</c> = PT_LOOS + 0x474e550.</summary>
    public const uint PtGnuEhFrame = 0x6474e550;
    /// <summary><c>PT_GNU_SFRAME</c> = PT_LOOS + 0x474e554 (include/elf/common.h).</summary>
    public const uint PtGnuSFrame = 0x6474e554;

    public const uint PfX = 1, PfW = 2, PfR = 4;

    public const uint ShtNull = 0, ShtProgbits = 1, ShtSymtab = 2, ShtStrtab = 3, ShtNote = 7, ShtNobits = 8, ShtDynsym = 11;
    /// <summary><c>SHT_GNU_SFRAME</c> (include/elf/common.h).</summary>
    public const uint ShtGnuSFrame = 0x6ffffff4;

    public const ulong ShfAlloc = 2, ShfExecInstr = 4, ShfCompressed = 0x800;

    /// <summary><c>SHN_UNDEF</c>, <c>SHN_LORESERVE</c>, <c>SHN_XINDEX</c>.</summary>
    public const ushort ShnUndef = 0, ShnLoReserve = 0xff00, ShnXIndex = 0xffff;

    /// <summary><c>PN_XNUM</c>: e_phnum overflowed; the real count is section 0's sh_info.</summary>
    public const ushort PnXNum = 0xffff;

    public const byte SttNotype = 0, SttObject = 1, SttFunc = 2, SttSection = 3, SttFile = 4, SttGnuIfunc = 10;

    /// <summary><c>NT_GNU_BUILD_ID</c>, note name "GNU".</summary>
    public const uint NtGnuBuildId = 3;
}

/// <summary>
/// The parts of the ELF file header (<c>Elf32_Ehdr</c>/<c>Elf64_Ehdr</c>) a reader needs.
/// <code>
/// e_ident[16] e_type:u16 e_machine:u16 e_version:u32 e_entry:addr e_phoff:off e_shoff:off
/// e_flags:u32 e_ehsize:u16 e_phentsize:u16 e_phnum:u16 e_shentsize:u16 e_shnum:u16 e_shstrndx:u16
/// </code>
/// </summary>
public readonly record struct ElfHeader(
    bool Is64,
    bool IsBigEndian,
    byte OsAbi,
    ushort Type,
    ushort Machine,
    ulong Entry,
    ulong ProgramHeaderOffset,
    ulong SectionHeaderOffset,
    uint Flags,
    ushort ProgramHeaderEntrySize,
    uint ProgramHeaderCount,
    ushort SectionHeaderEntrySize,
    uint SectionHeaderCount,
    uint SectionNameTableIndex)
{
    /// <summary>readelf's name for <see cref="Type"/>: <c>DYN</c>, <c>EXEC</c>, <c>REL</c>, <c>CORE</c>.</summary>
    public string TypeName => Type switch
    {
        ElfConstants.EtRel => "REL",
        ElfConstants.EtExec => "EXEC",
        ElfConstants.EtDyn => "DYN",
        ElfConstants.EtCore => "CORE",
        _ => $"0x{Type:x}",
    };

    /// <summary>
    /// BFD's target name, as objdump prints it after "file format": <c>elf64-x86-64</c>,
    /// <c>elf64-littleaarch64</c>, <c>elf64-s390</c>, ...; <c>elf64-little</c> for machines BFD
    /// would print generically.
    /// </summary>
    public string BfdTargetName
    {
        get
        {
            string bits = Is64 ? "elf64" : "elf32";
            return Machine switch
            {
                ElfConstants.EmX86_64 when Is64 => "elf64-x86-64",
                ElfConstants.EmX86_64 => "elf32-x86-64",
                ElfConstants.Em386 => "elf32-i386",
                ElfConstants.EmAArch64 => IsBigEndian ? bits + "-bigaarch64" : bits + "-littleaarch64",
                ElfConstants.EmS390 => bits + "-s390",
                ElfConstants.EmArm => IsBigEndian ? "elf32-bigarm" : "elf32-littlearm",
                _ => IsBigEndian ? bits + "-big" : bits + "-little",
            };
        }
    }
}

/// <summary>One program header (<c>Elf64_Phdr</c>; 32-bit ones widened).</summary>
public readonly record struct ElfProgramHeader(
    uint Type, uint Flags, ulong Offset, ulong VirtualAddress, ulong PhysicalAddress,
    ulong FileSize, ulong MemorySize, ulong Align)
{
    public bool IsLoad => Type == ElfConstants.PtLoad;
    public bool IsExecutable => (Flags & ElfConstants.PfX) != 0;
}

/// <summary>One section header (<c>Elf64_Shdr</c>; 32-bit ones widened), with its name resolved.</summary>
public readonly record struct ElfSectionHeader(
    int Index, string Name, uint NameOffset, uint Type, ulong Flags, ulong Address, ulong Offset,
    ulong Size, uint Link, uint Info, ulong AddressAlign, ulong EntrySize)
{
    /// <summary>SHT_NOBITS sections (.bss) occupy no file bytes.</summary>
    public bool HasFileData => Type != ElfConstants.ShtNobits && Type != ElfConstants.ShtNull;
}
