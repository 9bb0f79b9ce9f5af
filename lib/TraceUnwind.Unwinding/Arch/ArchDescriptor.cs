using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Arch;

/// <summary>
/// Everything the one unwinder core needs to know about an architecture, as data (STYLE rule 6,
/// the kernel's <c>ARCH_INIT_USER_FP_FRAME</c>): register numbers, the frame-pointer convention
/// as a <see cref="FrameRule"/>, the SP/CFA relation, perf's register layout, and the few
/// quirks (arm64's link register for the first frame, s390x's r14 fallback and back chain).
/// No code per architecture: the three instances below are the whole difference.
/// </summary>
public sealed class ArchDescriptor
{
    /// <summary>No perf register for this DWARF number.</summary>
    public const sbyte NoPerfRegister = -1;

    private readonly sbyte[] _dwarfToPerf;

    private ArchDescriptor(UnwindArch arch, string name, bool bigEndian, ushort sp, ushort fp, ushort link,
        ushort maxSFrameRegister, long spOffsetFromCfa, FrameRule fpRule, bool firstFrameLink, bool raFallbackLink,
        ulong pacMask, int perfIp, int perfSp, int perfFp, int perfLink, sbyte[] dwarfToPerf, SFrameAbi[] abis,
        int cfaAlignment, FrameRule entryRule)
    {
        EntryRule = entryRule;
        Arch = arch; Name = name; IsBigEndian = bigEndian;
        SpRegister = sp; FpRegister = fp; LinkRegister = link; MaxSFrameRegister = maxSFrameRegister;
        SpOffsetFromCfa = spOffsetFromCfa; FramePointerRule = fpRule;
        FirstFrameUsesLinkRegister = firstFrameLink; TopmostRaFallsBackToLinkRegister = raFallbackLink;
        PointerAuthMask = pacMask;
        PerfIp = perfIp; PerfSp = perfSp; PerfFp = perfFp; PerfLink = perfLink;
        _dwarfToPerf = dwarfToPerf; SFrameAbis = abis; CfaAlignment = cfaAlignment;
    }

    public UnwindArch Arch { get; }
    public string Name { get; }
    public bool IsBigEndian { get; }
    public int WordSize => 8;

    /// <summary>DWARF number of the stack pointer (x86-64 7 rsp, arm64 31 sp, s390x 15 r15).</summary>
    public ushort SpRegister { get; }
    /// <summary>DWARF number of the frame pointer (x86-64 6 rbp, arm64 29 x29, s390x 11 r11).</summary>
    public ushort FpRegister { get; }
    /// <summary>DWARF number of the link register (arm64 30, s390x 14), <see cref="ValueRule.NoRegister"/> on x86-64.</summary>
    public ushort LinkRegister { get; }
    /// <summary>Highest DWARF register an SFrame flex rule may name (the kernel's <c>unwind_user_get_reg</c>: x86-64 0-15, s390x 0-31 incl. FPRs).</summary>
    public ushort MaxSFrameRegister { get; }

    /// <summary>Caller's SP = CFA + this (s390x: -160, <c>SFRAME_S390X_SP_VAL_OFFSET</c>; 0 elsewhere).</summary>
    public long SpOffsetFromCfa { get; }
    /// <summary>The CFA must be a multiple of this (the kernel checks word alignment).</summary>
    public int CfaAlignment { get; }

    /// <summary>The frame-pointer (x86-64, arm64) or back-chain (s390x) convention as a rule.</summary>
    public FrameRule FramePointerRule { get; }

    /// <summary>
    /// The rule at a function's first instruction, before its prologue ran (the kernel's
    /// <c>ARCH_INIT_USER_FP_ENTRY_FRAME</c>): x86-64 RA at SP, arm64 RA in x30, s390x RA in r14
    /// (CFA = SP + 160). Used for the topmost frame when no SFrame row applies and the ip is
    /// exactly a function symbol's start.
    /// </summary>
    public FrameRule EntryRule { get; }

    /// <summary>
    /// arm64: in the first frame the return address may still be only in LR (a leaf that stored no
    /// frame record), so LR is offered as the caller when the frame record at FP disagrees (a heuristic).
    /// </summary>
    public bool FirstFrameUsesLinkRegister { get; }

    /// <summary>
    /// s390x (<c>arch_stack_walk_user_common</c>): when the first frame's RA read from the stack is
    /// not a code address, r14 has not been saved yet: use r14 (a heuristic).
    /// </summary>
    public bool TopmostRaFallsBackToLinkRegister { get; }

    /// <summary>Bits of a code address that survive pointer-authentication stripping (arm64: a 48-bit VA); all bits elsewhere.</summary>
    public ulong PointerAuthMask { get; }

    /// <summary>perf register numbers (uapi <c>asm/perf_regs.h</c>) of ip, sp, fp and the link register (-1: none).</summary>
    public int PerfIp { get; }
    public int PerfSp { get; }
    public int PerfFp { get; }
    public int PerfLink { get; }

    /// <summary>The SFrame ABI ids this architecture reads.</summary>
    public IReadOnlyList<SFrameAbi> SFrameAbis { get; }

    /// <summary>perf register number holding DWARF register <paramref name="dwarf"/>, or -1.</summary>
    public int PerfRegisterOf(int dwarf) => (uint)dwarf < (uint)_dwarfToPerf.Length ? _dwarfToPerf[dwarf] : NoPerfRegister;

    public bool ReadsSFrameAbi(SFrameAbi abi) => Array.IndexOf((SFrameAbi[])SFrameAbis, abi) >= 0;

    public static ArchDescriptor? For(UnwindArch arch) => arch switch
    {
        UnwindArch.X86_64 => X86_64,
        UnwindArch.Arm64 => Arm64,
        UnwindArch.S390x => S390x,
        _ => null,
    };

    public static ArchDescriptor? ForSFrameAbi(SFrameAbi abi) => abi switch
    {
        SFrameAbi.Amd64LittleEndian => X86_64,
        SFrameAbi.AArch64LittleEndian or SFrameAbi.AArch64BigEndian => Arm64,
        SFrameAbi.S390xBigEndian => S390x,
        _ => null,
    };

    /// <summary>
    /// x86-64 (SysV ABI, <c>push %rbp; mov %rsp,%rbp</c>): <c>(cfa, ra, fp) = (rbp + 16, *(cfa - 8), *(cfa - 16))</c>,
    /// the kernel's <c>ARCH_INIT_USER_FP_FRAME(8)</c>. rbp = 0 ends the chain (<c>_start</c> clears it).
    /// perf registers (arch/x86/include/uapi/asm/perf_regs.h): AX 0, BX 1, CX 2, DX 3, SI 4, DI 5,
    /// BP 6, SP 7, IP 8, FLAGS 9, segment registers 10-15, R8..R15 16-23. DWARF numbers
    /// (psABI fig. 3.36): rax 0, rdx 1, rcx 2, rbx 3, rsi 4, rdi 5, rbp 6, rsp 7, r8..r15 8-15.
    /// </summary>
    public static readonly ArchDescriptor X86_64 = new(
        UnwindArch.X86_64, "x86_64", bigEndian: false, sp: 7, fp: 6, link: ValueRule.NoRegister, maxSFrameRegister: 15,
        spOffsetFromCfa: 0,
        fpRule: new FrameRule(new CfaRule(6, 16), ValueRule.AtCfa(-8), ValueRule.AtCfa(-16), FrameRuleFlags.ZeroBaseIsOutermost),
        firstFrameLink: false, raFallbackLink: false, pacMask: ulong.MaxValue,
        perfIp: 8, perfSp: 7, perfFp: 6, perfLink: -1,
        dwarfToPerf: [0, 3, 2, 1, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23],
        abis: [SFrameAbi.Amd64LittleEndian], cfaAlignment: 8,
        entryRule: new FrameRule(new CfaRule(7, 8), ValueRule.AtCfa(-8), ValueRule.Unchanged, FrameRuleFlags.None));

    /// <summary>
    /// arm64 (AAPCS64 frame records <c>{x29, x30}</c> at x29): <c>(cfa, ra, fp) = (x29 + 16, *(cfa - 8), *(cfa - 16))</c>.
    /// The record can sit anywhere in the frame, so the caller SP this yields is an estimate.
    /// Pointer authentication: a saved LR is stripped to 48 address bits before use (the kernel's
    /// <c>ptrauth_strip_user_insn_pac</c> with a 48-bit VA).
    /// perf registers (arch/arm64/include/uapi/asm/perf_regs.h): X0..X28 0-28, X29 29, LR 30, SP 31, PC 32;
    /// DWARF numbers are the same for x0..x30 and sp (31).
    /// </summary>
    public static readonly ArchDescriptor Arm64 = new(
        UnwindArch.Arm64, "aarch64", bigEndian: false, sp: 31, fp: 29, link: 30, maxSFrameRegister: 31,
        spOffsetFromCfa: 0,
        fpRule: new FrameRule(new CfaRule(29, 16), ValueRule.AtCfa(-8), ValueRule.AtCfa(-16),
            FrameRuleFlags.ZeroBaseIsOutermost | FrameRuleFlags.InexactSp | FrameRuleFlags.MangledRa),
        firstFrameLink: true, raFallbackLink: false, pacMask: 0x0000_FFFF_FFFF_FFFF,
        perfIp: 32, perfSp: 31, perfFp: 29, perfLink: 30,
        dwarfToPerf: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31],
        abis: [SFrameAbi.AArch64LittleEndian, SFrameAbi.AArch64BigEndian], cfaAlignment: 8,
        entryRule: new FrameRule(new CfaRule(31, 0), ValueRule.InRegister(30), ValueRule.Unchanged, FrameRuleFlags.MangledRa));

    /// <summary>
    /// s390x (ELF ABI supplement: 160-byte register save area at the bottom of every frame;
    /// with <c>-mbackchain</c> the word at SP is the caller's SP): the back chain as a rule,
    /// <c>cfa = *(r15) + 160; ra = *(cfa - 48)</c> (r14's slot, 112 bytes into the caller's save
    /// area), caller SP = CFA - 160 (<c>SFRAME_S390X_SP_VAL_OFFSET</c>); a zero back chain ends it.
    /// perf registers (arch/s390/include/uapi/asm/perf_regs.h): R0..R15 0-15, FP0..FP15 16-31, MASK 32, PC 33.
    /// DWARF numbers: r0..r15 0-15, then f0 f2 f4 f6 f1 f3 f5 f7 f8 f10 f12 f14 f9 f11 f13 f15 as 16-31.
    /// </summary>
    public static readonly ArchDescriptor S390x = new(
        UnwindArch.S390x, "s390x", bigEndian: true, sp: 15, fp: 11, link: 14, maxSFrameRegister: 31,
        spOffsetFromCfa: -160,
        fpRule: new FrameRule(new CfaRule(15, 0, Deref: true, PostOffset: 160), ValueRule.AtCfa(-48), ValueRule.Unchanged,
            FrameRuleFlags.ZeroBaseIsOutermost),
        firstFrameLink: false, raFallbackLink: true, pacMask: ulong.MaxValue,
        perfIp: 33, perfSp: 15, perfFp: 11, perfLink: 14,
        dwarfToPerf: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
            16, 18, 20, 22, 17, 19, 21, 23, 24, 26, 28, 30, 25, 27, 29, 31],
        abis: [SFrameAbi.S390xBigEndian], cfaAlignment: 8,
        entryRule: new FrameRule(new CfaRule(15, 160), ValueRule.InRegister(14), ValueRule.Unchanged, FrameRuleFlags.None));
}
