using System.Runtime.CompilerServices;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Unwinding.Arch;

namespace TraceUnwind.Unwinding;

/// <summary>Outcome of asking an <see cref="IUnwindRuleSource"/> for a rule.</summary>
public enum RuleLookup : byte
{
    /// <summary>A rule was found (SFrame).</summary>
    Found,
    /// <summary>No unwind data covers the address (the kernel's ENOENT): no module, no file, no FDE.</summary>
    NotFound,
    /// <summary>The module's unwind data exists but failed validation.</summary>
    BadUnwindInfo,
}

/// <summary>Where the unwinder gets rules and mappings for code addresses.</summary>
public interface IUnwindRuleSource
{
    /// <summary>
    /// The SFrame rule for <paramref name="pc"/> (the ip, or a return address - 1), and the
    /// mapping that holds it when one is known (given even when no rule is).
    /// </summary>
    RuleLookup TryGetRule(ulong pc, out FrameRule rule, out Mapping? mapping);

    /// <summary>True when <paramref name="address"/> lies in executable code (for heuristics only).</summary>
    bool IsCodeAddress(ulong address);

    /// <summary>True when <paramref name="pc"/> is exactly the first byte of a function (a symbol's start).</summary>
    bool IsFunctionEntry(ulong pc);
}

/// <summary>
/// The one unwinder core (kernel <c>unwind_user_next_common</c>, framehop's <c>UnwinderInternal</c>):
/// it walks frames with <see cref="FrameRule"/>s that come from SFrame (via an
/// <see cref="IUnwindRuleSource"/>) or from the architecture's frame-pointer convention
/// (<see cref="ArchDescriptor.FramePointerRule"/>), and it alone checks every step:
/// <list type="bullet">
/// <item>direction: the stack only grows toward callers, so the CFA must be above the SP
/// (at or above it in the topmost frame, which may not have pushed anything yet);</item>
/// <item>alignment: the CFA is word aligned;</item>
/// <item>readability: every load goes through <see cref="IStackMemory"/> and may fail;</item>
/// <item>loops: a step that changes neither SP nor ip ends the walk;</item>
/// <item>registers other than SP/FP are known only in the topmost frame;</item>
/// <item>depth: the frame span (and <see cref="MaxDepth"/>) caps the walk.</item>
/// </list>
/// Caller frames are looked up at return address - 1 (a call can be the last instruction of a
/// function, and the return address then belongs to the next one) but written with the return
/// address itself and <see cref="FrameFlags.ReturnAddress"/>, as perf prints them; after a
/// signal frame the next ip is an interrupted pc and is looked up as it is. Frames found only by
/// a heuristic (arm64's LR for a leaf, s390x's r14 fallback) carry <see cref="FrameFlags.Unreliable"/>.
/// A walk allocates nothing.
/// </summary>
public sealed class Unwinder
{
    private readonly ArchDescriptor _arch;

    public Unwinder(ArchDescriptor arch, UnwindMode mode = UnwindMode.Auto, int maxDepth = 512)
    {
        ArgumentNullException.ThrowIfNull(arch);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDepth, 1);
        _arch = arch;
        Mode = mode;
        MaxDepth = maxDepth;
    }

    public ArchDescriptor Arch => _arch;
    public UnwindMode Mode { get; }
    /// <summary>Most frames written per walk (the span's length also caps it).</summary>
    public int MaxDepth { get; }

    private struct State
    {
        public ulong Ip, Sp, Fp;
        public bool Topmost;
        // False after a step whose rule only estimates the caller's SP (arm64 frame records):
        // SP-based SFrame rules are then not applied.
        public bool SpExact;
    }

    /// <summary>
    /// Unwinds from <paramref name="regs"/>: writes frame 0 (the ip) and every caller found into
    /// <paramref name="frames"/>, innermost first; returns the count and why the walk ended.
    /// </summary>
    public int Walk<TMemory, TRules>(ref TMemory memory, TRules rules, in UnwindRegisters regs, Span<Frame> frames, out UnwindStop stop)
        where TMemory : IStackMemory, allows ref struct
        where TRules : IUnwindRuleSource
    {
        int limit = Math.Min(frames.Length, MaxDepth);
        if (limit == 0) { stop = UnwindStop.DepthCap; return 0; }

        var st = new State { Ip = regs.Ip, Sp = regs.Sp, Fp = regs.Fp, Topmost = true, SpExact = true };
        ulong pc = st.Ip;
        var lookup = Mode is UnwindMode.None or UnwindMode.FramePointer
            ? LookupMappingOnly(rules, pc, out FrameRule rule, out Mapping? mapping)
            : rules.TryGetRule(pc, out rule, out mapping);
        frames[0] = new Frame(st.Ip, FrameKind.User, mapping);
        int n = 1;
        if (Mode == UnwindMode.None) { stop = UnwindStop.Disabled; return n; }

        while (true)
        {
            if (n >= limit) { stop = UnwindStop.DepthCap; return n; }

            // ---- choose the rule: SFrame where it applies, the frame-pointer convention where allowed.
            bool useSFrame = lookup == RuleLookup.Found && Mode != UnwindMode.FramePointer;
            if (useSFrame && !st.SpExact && RuleReadsSp(rule)) useSFrame = false;
            if (!useSFrame)
            {
                if (Mode == UnwindMode.SFrame)
                {
                    stop = lookup == RuleLookup.BadUnwindInfo ? UnwindStop.BadUnwindInfo : UnwindStop.NoRule;
                    return n;
                }
                rule = _arch.FramePointerRule;
            }
            if (rule.IsOutermost) { stop = UnwindStop.Outermost; return n; }
            if ((rule.Flags & FrameRuleFlags.Unusable) != 0) { stop = UnwindStop.BadUnwindInfo; return n; }

            // ---- at a function's first instruction nothing is pushed yet: the entry rule, not the FP chain
            // (the kernel does this for uprobes at function entry; we know entries from the symbol table).
            bool atEntry = st.Topmost && !useSFrame && rules.IsFunctionEntry(pc);
            if (atEntry) rule = _arch.EntryRule;

            // ---- arm64: a leaf may not have stored LR yet; offer LR when the frame record disagrees.
            if (st.Topmost && !useSFrame && !atEntry && _arch.FirstFrameUsesLinkRegister
                && regs.TryGet(_arch.LinkRegister, out ulong lr))
            {
                lr &= _arch.PointerAuthMask;
                ulong recordRa = 0;
                bool haveRecord = st.Fp >= st.Sp && st.Fp != 0 && memory.TryReadWord(st.Fp + 8, out recordRa);
                recordRa &= _arch.PointerAuthMask;
                if (lr != 0 && (!haveRecord || recordRa != lr) && rules.IsCodeAddress(lr - 1))
                {
                    pc = lr - 1;
                    lookup = rules.TryGetRule(pc, out rule, out var lrMapping);
                    frames[n++] = new Frame(lr, FrameKind.User, lrMapping, FrameFlags.ReturnAddress | FrameFlags.Unreliable);
                    st.Ip = lr;
                    st.Topmost = false;
                    continue;
                }
            }

            // ---- one step
            var stepStop = Step(ref memory, rules, in regs, ref st, rule, out ulong newIp, out bool heuristic);
            if (stepStop is { } why) { stop = why; return n; }
            if (newIp == 0) { stop = UnwindStop.Outermost; return n; }

            // A return address is looked up one byte back; after a signal frame the ip is an interrupted pc.
            bool isReturn = (rule.Flags & FrameRuleFlags.SignalFrame) == 0;
            pc = isReturn ? newIp - 1 : newIp;
            lookup = Mode == UnwindMode.FramePointer
                ? LookupMappingOnly(rules, pc, out rule, out mapping)
                : rules.TryGetRule(pc, out rule, out mapping);
            var flags = (isReturn ? FrameFlags.ReturnAddress : FrameFlags.None) | (heuristic ? FrameFlags.Unreliable : FrameFlags.None);
            frames[n++] = new Frame(newIp, FrameKind.User, mapping, flags);
        }
    }

    private static RuleLookup LookupMappingOnly<TRules>(TRules rules, ulong pc, out FrameRule rule, out Mapping? mapping)
        where TRules : IUnwindRuleSource
    {
        rules.TryGetRule(pc, out rule, out mapping);
        rule = default;
        return RuleLookup.NotFound;
    }

    private bool RuleReadsSp(in FrameRule rule) =>
        rule.Cfa.Register == _arch.SpRegister && !rule.IsOutermost;

    /// <summary>
    /// Applies <paramref name="rule"/> to <paramref name="st"/> (kernel <c>unwind_user_next_common</c>).
    /// Returns null on success with the caller's ip in <paramref name="newIp"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private UnwindStop? Step<TMemory, TRules>(ref TMemory mem, TRules rules, in UnwindRegisters regs, ref State st, in FrameRule rule,
        out ulong newIp, out bool heuristic)
        where TMemory : IStackMemory, allows ref struct
        where TRules : IUnwindRuleSource
    {
        newIp = 0;
        heuristic = false;
        bool zeroEnds = (rule.Flags & FrameRuleFlags.ZeroBaseIsOutermost) != 0;

        // CFA = base + offset [then load, then + post offset]
        if (!TryReadRegister(rule.Cfa.Register, in regs, in st, out ulong baseValue)) return UnwindStop.RegisterUnavailable;
        if (baseValue == 0 && zeroEnds) return UnwindStop.Outermost;
        // An FP-based CFA needs FP at or above SP (the kernel: -EINVAL otherwise).
        if (rule.Cfa.Register == _arch.FpRegister && baseValue < st.Sp) return UnwindStop.WouldGoBackwards;
        ulong cfa = unchecked(baseValue + (ulong)rule.Cfa.Offset);
        if (rule.Cfa.Deref)
        {
            if (!mem.TryReadWord(cfa, out cfa)) return UnwindStop.UnreadableMemory;
            if (cfa == 0 && zeroEnds) return UnwindStop.Outermost;
            cfa = unchecked(cfa + (ulong)rule.Cfa.PostOffset);
        }
        // The caller's frame lies above: cfa > sp (the topmost frame may not have moved SP yet).
        if (st.Topmost ? cfa < st.Sp : cfa <= st.Sp) return UnwindStop.WouldGoBackwards;
        if ((cfa & (ulong)(_arch.CfaAlignment - 1)) != 0) return UnwindStop.Misaligned;
        // s390x: caller SP = CFA - 160, which must not wrap below zero.
        if (_arch.SpOffsetFromCfa < 0 && cfa < (ulong)(-_arch.SpOffsetFromCfa)) return UnwindStop.WouldGoBackwards;
        ulong callerSp = unchecked(cfa + (ulong)_arch.SpOffsetFromCfa);

        // RA
        ulong ra;
        switch (rule.Ra.Kind)
        {
            case ValueRuleKind.CfaOffset:
                if (!rule.Ra.Deref) return UnwindStop.BadUnwindInfo; // RA = CFA + off cannot be right (kernel WARN)
                if (!mem.TryReadWord(unchecked(cfa + (ulong)(long)rule.Ra.Offset), out ra)) return UnwindStop.UnreadableMemory;
                break;
            case ValueRuleKind.Register:
                if (rule.Ra.Register == ValueRule.NoRegister) return UnwindStop.BadUnwindInfo;
                // SP/FP are known in every frame; any other register (the link register) only in the topmost.
                if (!TryReadRegister(rule.Ra.Register, in regs, in st, out ra)) return UnwindStop.RegisterUnavailable;
                ra = unchecked(ra + (ulong)(long)rule.Ra.Offset);
                if (rule.Ra.Deref && !mem.TryReadWord(ra, out ra)) return UnwindStop.UnreadableMemory;
                break;
            case ValueRuleKind.Undefined:
                return UnwindStop.Outermost;
            default:
                return UnwindStop.BadUnwindInfo;
        }
        if ((rule.Flags & FrameRuleFlags.MangledRa) != 0) ra &= _arch.PointerAuthMask;

        // s390x back chain, first frame: r14 may not have been stored yet (arch_stack_walk_user_common).
        if (st.Topmost && _arch.TopmostRaFallsBackToLinkRegister && (rule.Flags & FrameRuleFlags.FromSFrame) == 0
            && rule.Ra.Kind == ValueRuleKind.CfaOffset
            && !IsPlausibleReturn(rules, ra) && regs.TryGet(_arch.LinkRegister, out ulong link) && IsPlausibleReturn(rules, link))
        {
            ra = link;
            heuristic = true;
        }

        // FP
        ulong fp = st.Fp;
        switch (rule.Fp.Kind)
        {
            case ValueRuleKind.Unchanged:
                break;
            case ValueRuleKind.CfaOffset:
                if (!rule.Fp.Deref) return UnwindStop.BadUnwindInfo;
                if (!mem.TryReadWord(unchecked(cfa + (ulong)(long)rule.Fp.Offset), out fp)) return UnwindStop.UnreadableMemory;
                break;
            case ValueRuleKind.Register:
                if (!TryReadRegister(rule.Fp.Register, in regs, in st, out fp)) return UnwindStop.RegisterUnavailable;
                fp = unchecked(fp + (ulong)(long)rule.Fp.Offset);
                if (rule.Fp.Deref && !mem.TryReadWord(fp, out fp)) return UnwindStop.UnreadableMemory;
                break;
            default:
                fp = 0;
                break;
        }

        // A step that moves neither SP nor ip would repeat forever.
        if (callerSp == st.Sp && ra == st.Ip) return UnwindStop.Loop;

        st.Sp = callerSp;
        st.Fp = fp;
        st.Ip = ra;
        st.Topmost = false;
        st.SpExact = (rule.Flags & FrameRuleFlags.InexactSp) == 0;
        newIp = ra;
        return null;
    }

    private bool IsPlausibleReturn<TRules>(TRules rules, ulong address) where TRules : IUnwindRuleSource =>
        address != 0 && (address & 1) == 0 && rules.IsCodeAddress(address - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryReadRegister(ushort dwarf, in UnwindRegisters regs, in State st, out ulong value)
    {
        if (dwarf == _arch.SpRegister) { value = st.Sp; return true; }
        if (dwarf == _arch.FpRegister) { value = st.Fp; return true; }
        if (st.Topmost) return regs.TryGet(dwarf, out value);
        value = 0;
        return false;
    }
}
