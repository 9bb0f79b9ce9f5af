using TraceUnwind.Model;
using TraceUnwind.Unwinding.Arch;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// Every check of a step (kernel <c>unwind_user_next_common</c>) and every stop reason, on small
/// synthetic x86-64 stacks with hand-made rules: one test per way a walk can end.
/// </summary>
public class UnwinderCheckTests
{
    private const ulong F = 0x401000, G = 0x402000, H = 0x403000; // three "functions" in the stub's code
    private static readonly FrameRule SpPlus8 = new(new CfaRule(7, 8), ValueRule.AtCfa(-8), ValueRule.Unchanged, FrameRuleFlags.FromSFrame);

    private static (ulong[] Chain, Frame[] Frames, UnwindStop Stop) Walk(StubRules rules, StackImage img, UnwindRegisters regs,
        UnwindMode mode = UnwindMode.SFrame, int depth = 512, int span = 32)
    {
        var frames = new Frame[span];
        var memory = new StackSnapshot(regs.Sp, img.From(regs.Sp), false);
        int n = new Unwinder(ArchDescriptor.X86_64, mode, depth).Walk(ref memory, rules, regs, frames, out var stop);
        return (Synthetic.Addresses(frames.AsSpan(0, n)), frames[..n], stop);
    }

    private static StackImage Img() => new(0x7ffd_0000_0000, 0x1000, false);

    [Fact]
    public void ReturnAddressesAreLookedUpOneByteBack()
    {
        // G's call to F is G's last instruction: the return address G+0x100 is where H starts.
        // Looked up as is, it would take H's rule; one byte back it takes G's.
        var img = Img();
        ulong sp = img.Low + 0x100;
        img.Put(sp, G + 0x100);                  // F's RA: right after G's last byte
        img.Put(sp + 0x28, 0x7f00_0000_0000);    // G's RA (CFA sp+8+0x28 -> *(cfa-8))
        var rules = new StubRules()
            .Add(F, F + 0x100, SpPlus8)
            .Add(G, G + 0x100, SpPlus8 with { Cfa = new CfaRule(7, 0x28) })
            .Add(H, H + 0x100, FrameRule.Outermost(FrameRuleFlags.FromSFrame));
        var (chain, frames, stop) = Walk(rules, img, new UnwindRegisters(F + 0x10, sp, 0));
        Assert.Equal([F + 0x10, G + 0x100, 0x7f00_0000_0000], chain);
        Assert.Equal(FrameFlags.ReturnAddress, frames[1].Flags);
        Assert.Equal(G + 0xff, frames[1].LookupAddress);
        Assert.Equal(UnwindStop.NoRule, stop);
    }

    [Fact]
    public void SignalFrameCallerIsAnInterruptedPc()
    {
        // A signal trampoline's caller ip is where the signal hit: looked up as it is, not flagged as a return address.
        var img = Img();
        ulong sp = img.Low + 0x100;
        img.Put(sp, G);                          // interrupted at G's first byte
        img.Put(sp + 8, 0x7f00_0000_0000);
        var rules = new StubRules()
            .Add(F, F + 0x100, SpPlus8 with { Flags = FrameRuleFlags.FromSFrame | FrameRuleFlags.SignalFrame })
            .Add(G, G + 0x100, SpPlus8)
            .Add(G - 0x100, G, FrameRule.Outermost(FrameRuleFlags.FromSFrame));
        var (chain, frames, _) = Walk(rules, img, new UnwindRegisters(F, sp, 0));
        Assert.Equal([F, G, 0x7f00_0000_0000], chain);
        Assert.Equal(FrameFlags.None, frames[1].Flags);
        Assert.Equal(G, frames[1].LookupAddress);
    }

    [Fact]
    public void OutermostRowEndsTheWalk()
    {
        var img = Img();
        ulong sp = img.Low + 0x100;
        img.Put(sp, G + 5);
        var rules = new StubRules().Add(F, F + 0x100, SpPlus8).Add(G, G + 0x100, FrameRule.Outermost(FrameRuleFlags.FromSFrame));
        var (chain, _, stop) = Walk(rules, img, new UnwindRegisters(F, sp, 0));
        Assert.Equal([F, G + 5], chain);
        Assert.Equal(UnwindStop.Outermost, stop);
    }

    [Fact]
    public void ZeroReturnAddressIsOutermost()
    {
        var img = Img();
        ulong sp = img.Low + 0x100;
        img.Put(sp, 0);
        var (chain, _, stop) = Walk(new StubRules().Add(F, F + 0x100, SpPlus8), img, new UnwindRegisters(F, sp, 0));
        Assert.Equal([F], chain);
        Assert.Equal(UnwindStop.Outermost, stop);
    }

    [Fact]
    public void CfaBelowSpWouldGoBackwards()
    {
        var img = Img();
        ulong sp = img.Low + 0x100;
        var rules = new StubRules().Add(F, F + 0x100, SpPlus8 with { Cfa = new CfaRule(7, -16) });
        var (_, _, stop) = Walk(rules, img, new UnwindRegisters(F, sp, 0));
        Assert.Equal(UnwindStop.WouldGoBackwards, stop);
    }

    [Fact]
    public void OnlyTheTopmostFrameMayKeepItsSp()
    {
        // CFA = SP + 0 is allowed once (topmost); in a caller it would not move: would go backwards.
        var img = Img();
        ulong sp = img.Low + 0x100;
        var same = new FrameRule(new CfaRule(7, 0), ValueRule.AtCfa(0x10), ValueRule.Unchanged, FrameRuleFlags.FromSFrame);
        img.Put(sp + 0x10, G + 1);
        img.Put(sp + 0x10 + 0, G + 1);
        var rules = new StubRules().Add(F, F + 0x100, same).Add(G, G + 0x100, same);
        var (chain, _, stop) = Walk(rules, img, new UnwindRegisters(F, sp, 0));
        Assert.Equal([F, G + 1], chain);
        Assert.Equal(UnwindStop.WouldGoBackwards, stop);
    }

    [Fact]
    public void MisalignedCfaStops()
    {
        var img = Img();
        ulong sp = img.Low + 0x100;
        var (_, _, stop) = Walk(new StubRules().Add(F, F + 0x100, SpPlus8 with { Cfa = new CfaRule(7, 12) }), img, new UnwindRegisters(F, sp, 0));
        Assert.Equal(UnwindStop.Misaligned, stop);
    }

    [Fact]
    public void ReadPastTheCapturedBytesIsUnreadable()
    {
        var img = Img();
        ulong sp = img.High - 8;                 // the RA slot at CFA - 8 = SP + 8 is past the captured bytes
        var (chain, _, stop) = Walk(new StubRules().Add(F, F + 0x100, SpPlus8 with { Cfa = new CfaRule(7, 16) }), img, new UnwindRegisters(F, sp, 0));
        Assert.Equal([F], chain);
        Assert.Equal(UnwindStop.UnreadableMemory, stop);
    }

    [Fact]
    public void AStepThatMovesNothingIsALoop()
    {
        // Topmost: CFA = SP + 0 and RA = the same ip would repeat forever.
        var img = Img();
        ulong sp = img.Low + 0x100;
        img.Put(sp, F);
        var rules = new StubRules().Add(F, F + 0x100, new FrameRule(new CfaRule(7, 0), ValueRule.AtCfa(0), ValueRule.Unchanged, FrameRuleFlags.FromSFrame));
        var (_, _, stop) = Walk(rules, img, new UnwindRegisters(F, sp, 0));
        Assert.Equal(UnwindStop.Loop, stop);
    }

    [Fact]
    public void DepthCapAndSpanCap()
    {
        // A long chain of identical frames 16 bytes apart.
        var img = Img();
        ulong sp = img.Low + 0x10;
        for (ulong a = sp + 8; a < img.High - 8; a += 16) img.Put(a, G + 8);
        var rules = new StubRules().Add(F, F + 0x100, SpPlus8 with { Cfa = new CfaRule(7, 16) })
            .Add(G, G + 0x100, SpPlus8 with { Cfa = new CfaRule(7, 16) });
        var (chain, _, stop) = Walk(rules, img, new UnwindRegisters(F, sp, 0), depth: 10);
        Assert.Equal(10, chain.Length);
        Assert.Equal(UnwindStop.DepthCap, stop);
        (chain, _, stop) = Walk(rules, img, new UnwindRegisters(F, sp, 0), span: 7);
        Assert.Equal(7, chain.Length);
        Assert.Equal(UnwindStop.DepthCap, stop);
    }

    [Fact]
    public void OtherRegistersOnlyInTheTopmostFrame()
    {
        // CFA = r10 + 8 (flex row, the DRAP register): fine at the top, refused in a caller.
        var img = Img();
        ulong sp = img.Low + 0x100;
        var r10Rule = new FrameRule(new CfaRule(10, 8), ValueRule.AtCfa(-8), ValueRule.Unchanged, FrameRuleFlags.FromSFrame);
        img.Put(sp + 0x20, G + 4);               // RA at r10 + 8 - 8
        var regs = new UnwindRegisters(F, sp, 0);
        regs.Set(10, sp + 0x20);
        var rules = new StubRules().Add(F, F + 0x100, r10Rule).Add(G, G + 0x100, r10Rule);
        var (chain, _, stop) = Walk(rules, img, regs);
        Assert.Equal([F, G + 4], chain);
        Assert.Equal(UnwindStop.RegisterUnavailable, stop);
    }

    [Fact]
    public void RaInARegisterOnlyInTheTopmostFrame()
    {
        // x86-64 has no link register: a "retain RA" row cannot be used at all.
        var img = Img();
        ulong sp = img.Low + 0x100;
        var rules = new StubRules().Add(F, F + 0x100,
            new FrameRule(new CfaRule(7, 8), ValueRule.InRegister(ValueRule.NoRegister), ValueRule.Unchanged, FrameRuleFlags.FromSFrame));
        var (_, _, stop) = Walk(rules, img, new UnwindRegisters(F, sp, 0));
        Assert.Equal(UnwindStop.BadUnwindInfo, stop);
    }

    [Fact]
    public void UnusableRowIsBadUnwindInfo()
    {
        var img = Img();
        ulong sp = img.Low + 0x100;
        var rules = new StubRules().Add(F, F + 0x100, SpPlus8 with { Flags = FrameRuleFlags.FromSFrame | FrameRuleFlags.Unusable });
        var (_, _, stop) = Walk(rules, img, new UnwindRegisters(F, sp, 0));
        Assert.Equal(UnwindStop.BadUnwindInfo, stop);
        // RA = CFA - 8 without a load (a malformed control word) is refused too.
        rules = new StubRules().Add(F, F + 0x100, new FrameRule(new CfaRule(7, 8), new ValueRule(ValueRuleKind.CfaOffset, 0, -8, false), ValueRule.Unchanged, FrameRuleFlags.FromSFrame));
        (_, _, stop) = Walk(rules, img, new UnwindRegisters(F, sp, 0));
        Assert.Equal(UnwindStop.BadUnwindInfo, stop);
    }

    [Fact]
    public void FramePointerBelowSpIsRefused()
    {
        var img = Img();
        ulong sp = img.Low + 0x100;
        var (_, _, stop) = Walk(new StubRules(), img, new UnwindRegisters(F, sp, sp - 0x40), mode: UnwindMode.FramePointer);
        Assert.Equal(UnwindStop.WouldGoBackwards, stop);
    }

    [Fact]
    public void NoRegistersOrNoneMode()
    {
        var img = Img();
        ulong sp = img.Low + 0x100;
        var (chain, _, stop) = Walk(new StubRules(), img, new UnwindRegisters(F, sp, 0), mode: UnwindMode.None);
        Assert.Equal([F], chain);
        Assert.Equal(UnwindStop.Disabled, stop);
        (chain, _, stop) = Walk(new StubRules(), img, new UnwindRegisters(F, sp, 0), mode: UnwindMode.SFrame);
        Assert.Equal([F], chain);
        Assert.Equal(UnwindStop.NoRule, stop);
    }

    [Fact]
    public void X86FramePointerChain()
    {
        // push %rbp; mov %rsp,%rbp in every function: records {saved rbp, RA} linked through rbp.
        var img = Img();
        ulong sp = img.Low + 0x100;
        ulong f1 = sp + 0x20, f2 = f1 + 0x40, f3 = f2 + 0x30;
        img.Put(f1, f2); img.Put(f1 + 8, G + 0x11);
        img.Put(f2, f3); img.Put(f2 + 8, H + 0x22);
        img.Put(f3, 0); img.Put(f3 + 8, 0x7f00_0000_1234);
        var (chain, frames, stop) = Walk(new StubRules(), img, new UnwindRegisters(F, sp, f1), mode: UnwindMode.FramePointer);
        Assert.Equal([F, G + 0x11, H + 0x22, 0x7f00_0000_1234], chain);
        Assert.Equal(UnwindStop.Outermost, stop);
        Assert.All(frames[1..], f => Assert.Equal(FrameFlags.ReturnAddress, f.Flags));
    }

    /// <summary>
    /// SYNTHETIC stack for a real flex row: stackcap's <c>realigned</c> (DRAP, fixtures/sframe/x86_64/stackcap.disasm.txt)
    /// keeps the CFA in r10 and saves r10 at rbp-40, so from 0x1570 its SFrame row is
    /// <c>CFA = *(rbp - 40), RA = *(CFA - 8), FP = *(rbp + 0)</c> (objdump: <c>(fp-40) (fp+0) U</c>).
    /// </summary>
    [Fact]
    public void DrapRowDereferencesTheCfa()
    {
        const ulong bias = 0x5600_0000_0000;
        var maps = Synthetic.Load("x86_64/stackcap", bias);
        var img = Img();
        ulong cfa = img.High - 0x200;                 // caller's SP before its call: 8-aligned
        img.Put(cfa - 8, bias + 0x1207);              // return into main after "call realigned" at 0x1202
        img.Put(cfa + 40, 0x7f00_0000_1234);          // main's row at 0x1202: CFA = sp + 48: its RA at +40
        ulong aligned = (cfa - 8) & ~63UL;            // and $-64,%rsp
        img.Put(aligned - 8, bias + 0x1207);          // push -0x8(%r10): the RA copy
        img.Put(aligned - 16, 0x1111);                // push %rbp (main's rbp)
        ulong rbp = aligned - 16;                     // mov %rsp,%rbp
        img.Put(rbp - 40, cfa);                       // push r15, r14, r13, r12, then r10 (= CFA) at rbp-40
        ulong sp = rbp - 48;                          // push %rbx
        var regs = new UnwindRegisters(bias + 0x1580, sp, rbp);
        var frames = new Frame[16];
        int n = new UserStackUnwinder(UnwindMode.SFrame).Unwind(UnwindArch.X86_64, regs, img.From(sp), maps, frames, out var stop);
        Assert.Equal([bias + 0x1580, bias + 0x1207, 0x7f00_0000_1234], Synthetic.Addresses(frames.AsSpan(0, n)));
        Assert.Equal(UnwindStop.NoRule, stop);
    }

    [Theory]
    [InlineData("auto", UnwindMode.Auto)]
    [InlineData("SFrame", UnwindMode.SFrame)]
    [InlineData("fp", UnwindMode.FramePointer)]
    [InlineData("none", UnwindMode.None)]
    public void UnwindModeNamesRoundTrip(string text, UnwindMode mode)
    {
        Assert.True(UnwindModeNames.TryParse(text, out var m));
        Assert.Equal(mode, m);
        Assert.True(UnwindModeNames.TryParse(UnwindModeNames.ToName(m), out var again));
        Assert.Equal(mode, again);
        Assert.False(UnwindModeNames.TryParse("dwarf", out _));
    }

    /// <summary>
    /// At a function's first instruction nothing is pushed: the frame-pointer chain would skip the
    /// caller; the entry rule (RA at SP) finds it. stackcap's <c>fib</c> starts at 0x13a0 (.symtab).
    /// </summary>
    [Fact]
    public void FunctionEntryUsesTheEntryRule()
    {
        const ulong bias = 0x5600_0000_0000;
        var maps = Synthetic.Load("x86_64/stackcap", bias);
        var elf = Elf.ElfFile.Load(Testing.Fixtures.Path("sframe", "x86_64", "stackcap"));
        Assert.True(elf.Symbols!.TryFind(0x13a0, out int i) && elf.Symbols.NameOf(i) == "fib" && elf.Symbols.StartOf(i) == 0x13a0);
        var img = Img();
        ulong sp = img.High - 0x100;
        img.Put(sp, bias + 0x11d6);                   // the call's return address, nothing else pushed yet
        var regs = new UnwindRegisters(bias + 0x13a0, sp, 0x1); // rbp: whatever the caller left (here garbage)
        var frames = new Frame[16];
        int n = new UserStackUnwinder(UnwindMode.FramePointer).Unwind(UnwindArch.X86_64, regs, img.From(sp), maps, frames, out _);
        Assert.Equal([bias + 0x13a0, bias + 0x11d6], Synthetic.Addresses(frames.AsSpan(0, n)));
        Assert.True(frames[1].IsReliable);
        // One byte later it is not an entry: the frame-pointer chain (rbp = 0x1) stops at once.
        regs.Ip = bias + 0x13a1;
        n = new UserStackUnwinder(UnwindMode.FramePointer).Unwind(UnwindArch.X86_64, regs, img.From(sp), maps, frames, out var stop);
        Assert.Equal(1, n);
        Assert.Equal(UnwindStop.WouldGoBackwards, stop);
    }
}
