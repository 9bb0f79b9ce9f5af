namespace TraceUnwind.Unwinding;

/// <summary>
/// How to compute the CFA (canonical frame address: the caller's stack pointer at the call,
/// plus the architecture's <see cref="ArchDescriptor.SpOffsetFromCfa"/>):
/// <c>cfa = Register + Offset</c>; when <see cref="Deref"/>, <c>cfa = *(Register + Offset) + PostOffset</c>.
/// <see cref="Register"/> is a DWARF register number; the architecture says which is SP and which FP.
/// </summary>
public readonly record struct CfaRule(ushort Register, long Offset, bool Deref = false, long PostOffset = 0)
{
    public override string ToString() =>
        Deref ? $"*(r{Register}{Offset:+#;-#;+0}){PostOffset:+#;-#;''}" : $"r{Register}{Offset:+#;-#;+0}";
}

/// <summary>What a <see cref="ValueRule"/> does.</summary>
public enum ValueRuleKind : byte
{
    /// <summary>The value is the same in the caller (FP "retain").</summary>
    Unchanged,
    /// <summary>No value: for RA this makes the frame outermost.</summary>
    Undefined,
    /// <summary><c>CFA + Offset</c>, or <c>*(CFA + Offset)</c> when <see cref="ValueRule.Deref"/>.</summary>
    CfaOffset,
    /// <summary>
    /// <c>Register + Offset</c> (or its content when <see cref="ValueRule.Deref"/>). SP and FP are
    /// known in every frame; any other register only in the topmost frame, where all registers
    /// are known (the kernel's rule too). The RA "retained in the link register" (arm64 x30,
    /// s390x r14) is this kind with offset 0.
    /// </summary>
    Register,
}

/// <summary>How to recover the return address or the frame pointer of the caller.</summary>
public readonly record struct ValueRule(ValueRuleKind Kind, ushort Register = 0, int Offset = 0, bool Deref = false)
{
    /// <summary>Register number meaning "no such register" (AMD64 has no link register).</summary>
    public const ushort NoRegister = ushort.MaxValue;

    public static ValueRule Unchanged => default;
    public static ValueRule Undefined => new(ValueRuleKind.Undefined);
    public static ValueRule AtCfa(int offset) => new(ValueRuleKind.CfaOffset, 0, offset, true);
    public static ValueRule InRegister(ushort register, int offset = 0, bool deref = false) => new(ValueRuleKind.Register, register, offset, deref);

    public override string ToString() => Kind switch
    {
        ValueRuleKind.Unchanged => "same",
        ValueRuleKind.Undefined => "undefined",
        ValueRuleKind.CfaOffset => Deref ? $"*(cfa{Offset:+#;-#;+0})" : $"cfa{Offset:+#;-#;+0}",
        _ => Deref ? $"*(r{Register}{Offset:+#;-#;+0})" : $"r{Register}{Offset:+#;-#;+0}",
    };
}

/// <summary>Facts about a <see cref="FrameRule"/>.</summary>
[Flags]
public enum FrameRuleFlags : byte
{
    None = 0,
    /// <summary>RA undefined: this is the outermost frame (SFrame FRE with no data words).</summary>
    Outermost = 1,
    /// <summary>The saved RA carries a pointer-authentication code to strip (aarch64 FRE bit 7).</summary>
    MangledRa = 2,
    /// <summary>The function is a signal trampoline: the caller's ip is an interrupted pc, not a return address.</summary>
    SignalFrame = 4,
    /// <summary>The rule came from SFrame (otherwise from the architecture's frame-pointer convention).</summary>
    FromSFrame = 8,
    /// <summary>The caller's SP this rule yields is only an estimate (arm64 frame records can sit anywhere in the frame).</summary>
    InexactSp = 16,
    /// <summary>A zero base value (frame pointer, back chain) marks the end of the chain rather than an error.</summary>
    ZeroBaseIsOutermost = 32,
    /// <summary>The SFrame row cannot be used (a rule the unwinder must refuse, e.g. RA = CFA + off without a load).</summary>
    Unusable = 64,
}

/// <summary>
/// One unwinding step's rule: the shape the kernel's <c>struct unwind_user_frame</c> has, which
/// both an SFrame row and an architecture's frame-pointer convention fill (STYLE rule 6).
/// </summary>
public readonly record struct FrameRule(CfaRule Cfa, ValueRule Ra, ValueRule Fp, FrameRuleFlags Flags)
{
    public bool IsOutermost => (Flags & FrameRuleFlags.Outermost) != 0;

    public static FrameRule Outermost(FrameRuleFlags extra = FrameRuleFlags.None) =>
        new(default, ValueRule.Undefined, ValueRule.Unchanged, FrameRuleFlags.Outermost | extra);

    public override string ToString() => IsOutermost ? "outermost" : $"cfa={Cfa} ra={Ra} fp={Fp} [{Flags}]";
}
