using TraceUnwind.Model;
using TraceUnwind.Processes;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// arm64 and s390x unwinding (SFrame and the frame-pointer / back-chain conventions) over
/// SYNTHETIC stacks: no arm64/s390x machine was available to capture real ones, so each stack is
/// built word by word from the prologues in the fixtures' disassembly, and the SFrame rows come
/// from the real fixture binaries (fixtures/sframe/{aarch64,s390x}/recursion-O2).
/// </summary>
public class FramePointerTests
{
    // ---------------------------------------------------------------- arm64
    //
    // fixtures/sframe/aarch64/recursion-O2.disasm.txt:
    //   700 <main>: stp x29, x30, [sp, #-16]!; mov x29, sp; ... 72c: bl 8a0 <fib>   (returns to 730)
    //   8a0 <fib>:  cmp x0, #1; b.le 900; 8a8: stp x29, x30, [sp, #-48]!; 8ac: mov x29, sp; ... 8d8: bl 8a0 (returns to 8dc)
    // SFrame: main 704.. sp+16 c-16 c-8; fib 8a0 sp+0 u u (RA still in x30), 8ac.. sp+48 c-48 c-40.
    // Stack: libc -> main -> fib#1 -> fib#2, fib#2 sampled at 8a4 (before its stp).

    private const ulong ArmBias = 0x5555_0000_0000;
    private const ulong LibcRa = 0x7f00_0012_3458;

    private sealed record ArmStack(StackImage Image, UnwindRegisters Regs, AddressSpace Maps, ulong MainSp, ulong Fib1Sp);

    private static ArmStack ArmFib(ulong topPc, bool topmostIsMain = false)
    {
        var img = new StackImage(0x7fff_0000_0000, 0x1000, bigEndian: false);
        ulong cfaMain = img.High - 0x100;
        ulong mainSp = cfaMain - 16;                      // stp x29, x30, [sp, #-16]!
        img.Put(mainSp, 0);                               // x29 of main's caller: end of the chain
        img.Put(mainSp + 8, LibcRa);                      // x30: return into libc
        ulong fib1Sp = mainSp - 48;                       // stp x29, x30, [sp, #-48]!
        img.Put(fib1Sp, mainSp);                          // main's x29 (mov x29, sp)
        img.Put(fib1Sp + 8, ArmBias + 0x730);             // return into main after bl fib
        UnwindRegisters regs;
        if (topmostIsMain)
        {
            // main sampled at 730, after fib returned: x29 = main's record, x30 still 730 (stale).
            regs = new UnwindRegisters(ArmBias + 0x730, mainSp, mainSp);
            regs.Set(30, ArmBias + 0x730);
        }
        else
        {
            // fib#2 sampled at 8a4: nothing pushed, sp = fib#1's sp, x29 = fib#1's record, x30 = return into fib#1.
            regs = new UnwindRegisters(ArmBias + topPc, fib1Sp, fib1Sp);
            regs.Set(30, ArmBias + 0x8dc);
        }
        regs.Set(31, regs.Sp);
        regs.Set(29, regs.Fp);
        return new ArmStack(img, regs, Synthetic.Load("aarch64/recursion-O2", ArmBias), mainSp, fib1Sp);
    }

    private static (ulong[] Chain, Frame[] Frames, UnwindStop Stop) Run(UnwindMode mode, UnwindArch arch, StackImage img, in UnwindRegisters regs, AddressSpace maps)
    {
        var frames = new Frame[32];
        int n = new UserStackUnwinder(mode).Unwind(arch, regs, img.From(regs.Sp), maps, frames, out var stop);
        return (Synthetic.Addresses(frames.AsSpan(0, n)), frames[..n], stop);
    }

    [Fact]
    public void Arm64SFrameUsesLinkRegisterForTheLeafThenFrameRecords()
    {
        var s = ArmFib(0x8a4);
        var (chain, frames, stop) = Run(UnwindMode.SFrame, UnwindArch.Arm64, s.Image, s.Regs, s.Maps);
        Assert.Equal([ArmBias + 0x8a4, ArmBias + 0x8dc, ArmBias + 0x730, LibcRa], chain);
        Assert.Equal(UnwindStop.NoRule, stop); // libc is not mapped here
        Assert.All(frames, f => Assert.True(f.IsReliable));
    }

    [Fact]
    public void Arm64FramePointersOfferLinkRegisterAsUnreliableCaller()
    {
        var s = ArmFib(0x8a4);
        var (chain, frames, stop) = Run(UnwindMode.FramePointer, UnwindArch.Arm64, s.Image, s.Regs, s.Maps);
        // x29 points at fib#1's record (return into main): fib#1 itself is only in x30.
        Assert.Equal([ArmBias + 0x8a4, ArmBias + 0x8dc, ArmBias + 0x730, LibcRa], chain);
        Assert.Equal(FrameFlags.ReturnAddress | FrameFlags.Unreliable, frames[1].Flags);
        Assert.True(frames[2].IsReliable && frames[3].IsReliable);
        Assert.Equal(UnwindStop.Outermost, stop); // main's saved x29 is 0
    }

    [Fact]
    public void Arm64AutoModeIsSFrameThenFramePointers()
    {
        var s = ArmFib(0x8a4);
        var (chain, frames, stop) = Run(UnwindMode.Auto, UnwindArch.Arm64, s.Image, s.Regs, s.Maps);
        Assert.Equal([ArmBias + 0x8a4, ArmBias + 0x8dc, ArmBias + 0x730, LibcRa], chain);
        Assert.All(frames, f => Assert.True(f.IsReliable));
        Assert.Equal(UnwindStop.Outermost, stop); // in libc: frame pointers, x29 = 0
    }

    [Fact]
    public void Arm64StaleLinkRegisterIsMarkedUnreliable()
    {
        // main sampled after a call returned: x30 is stale. Frame pointers cannot know; the guess is flagged.
        var s = ArmFib(0, topmostIsMain: true);
        var (chain, frames, _) = Run(UnwindMode.FramePointer, UnwindArch.Arm64, s.Image, s.Regs, s.Maps);
        Assert.Equal([ArmBias + 0x730, ArmBias + 0x730, LibcRa], chain);
        Assert.False(frames[1].IsReliable);
        // SFrame knows main's row at 730 (sp+16 c-16 c-8): no guess.
        (chain, frames, _) = Run(UnwindMode.SFrame, UnwindArch.Arm64, s.Image, s.Regs, s.Maps);
        Assert.Equal([ArmBias + 0x730, LibcRa], chain);
        Assert.All(frames, f => Assert.True(f.IsReliable));
    }

    [Fact]
    public void Arm64PointerAuthenticationCodeIsStripped()
    {
        // A PAC in the saved LR (bits above the 48-bit VA) is removed by the FP rule's mangled-RA flag.
        var s = ArmFib(0x8a4);
        s.Image.Put(s.Fib1Sp + 8, (0x002aUL << 48) | (ArmBias + 0x730));
        var (chain, _, _) = Run(UnwindMode.FramePointer, UnwindArch.Arm64, s.Image, s.Regs, s.Maps);
        Assert.Equal(ArmBias + 0x730, chain[2]);
    }

    // ---------------------------------------------------------------- s390x
    //
    // fixtures/sframe/s390x/recursion-O2.disasm.txt:
    //   6f0 <main>: stmg %r10,%r15,80(%r15); lay %r15,-160(%r15); ... 70c: brasl %r14,860 <fib> (returns to 712)
    //   860 <fib>:  cghi %r2,1; bler %r14; 866: stmg %r8,%r15,64(%r15); 872: lay %r15,-160(%r15); ... 894: brasl %r14,860 (returns to 89a)
    // SFrame: main 700.. sp+320 c-72 c-48; fib 860 sp+160 u u (RA in r14), 878.. sp+320 c-72 c-48.
    // ABI: a callee saves r6..r15 into its caller's 160-byte save area (r11 at +88, r14 at +112);
    // with -mbackchain the word at SP is the caller's SP (these binaries were not built with it:
    // the back-chain words below are what -mbackchain would have stored).

    private const ulong S390Bias = 0x2aa0_0000_0000;

    private sealed record S390Stack(StackImage Image, AddressSpace Maps, ulong S0, ulong MainSp, ulong Fib1Sp, ulong Fib2Sp);

    private static S390Stack S390Fib()
    {
        var img = new StackImage(0x3ff_ffff_0000, 0x2000, bigEndian: true);
        ulong s0 = img.High - 0x400;                      // SP of main's caller (libc)
        ulong mainSp = s0 - 160, fib1Sp = mainSp - 160, fib2Sp = fib1Sp - 160;
        img.Put(s0 + 112, LibcRa);                        // main's stmg: r14 into its caller's save area
        img.Put(s0 + 88, 0x1111);                         //              r11
        img.Put(mainSp + 112, S390Bias + 0x712);          // fib#1's stmg: return into main
        img.Put(mainSp + 88, 0x2222);
        img.Put(fib1Sp + 112, S390Bias + 0x89a);          // fib#2's stmg: return into fib#1
        img.Put(fib1Sp + 88, 0x3333);
        img.Put(fib2Sp, fib1Sp);                          // back chains (-mbackchain)
        img.Put(fib1Sp, mainSp);
        img.Put(mainSp, s0);
        img.Put(s0, 0);                                   // outermost
        return new S390Stack(img, Synthetic.Load("s390x/recursion-O2", S390Bias), s0, mainSp, fib1Sp, fib2Sp);
    }

    private static UnwindRegisters S390Regs(ulong pc, ulong sp, ulong r14)
    {
        var r = new UnwindRegisters(S390Bias + pc, sp, 0x4444);
        r.Set(15, sp);
        r.Set(14, r14);
        r.Set(11, 0x4444);
        return r;
    }

    [Fact]
    public void S390xSFrameDecodesCfaAndUsesR14InTheLeaf()
    {
        var s = S390Fib();
        // fib#2 sampled at 864 (bler: nothing saved, no frame): SP = fib#1's SP, r14 = return into fib#1.
        var regs = S390Regs(0x864, s.Fib1Sp, S390Bias + 0x89a);
        var (chain, frames, stop) = Run(UnwindMode.SFrame, UnwindArch.S390x, s.Image, regs, s.Maps);
        Assert.Equal([S390Bias + 0x864, S390Bias + 0x89a, S390Bias + 0x712, LibcRa], chain);
        Assert.Equal(UnwindStop.NoRule, stop);
        Assert.All(frames, f => Assert.True(f.IsReliable));
    }

    [Fact]
    public void S390xBackChain()
    {
        var s = S390Fib();
        // fib#2 sampled at 88c, its frame allocated and back chain stored.
        var regs = S390Regs(0x88c, s.Fib2Sp, S390Bias + 0x89a);
        var (chain, frames, stop) = Run(UnwindMode.FramePointer, UnwindArch.S390x, s.Image, regs, s.Maps);
        Assert.Equal([S390Bias + 0x88c, S390Bias + 0x89a, S390Bias + 0x712, LibcRa], chain);
        Assert.Equal(UnwindStop.Outermost, stop); // back chain 0
        Assert.All(frames, f => Assert.True(f.IsReliable));
        // SFrame gives the same chain for the same sample (row 878.. sp+320 c-72 c-48).
        (chain, _, _) = Run(UnwindMode.SFrame, UnwindArch.S390x, s.Image, regs, s.Maps);
        Assert.Equal([S390Bias + 0x88c, S390Bias + 0x89a, S390Bias + 0x712, LibcRa], chain);
    }

    [Fact]
    public void S390xFirstFrameFallsBackToR14WhenTheSlotIsNoCode()
    {
        var s = S390Fib();
        s.Image.Put(s.S0 + 112, 0);                       // the slot the back chain leads to was never written
        // fib#1 sampled at 866 (before stmg): the back chain at SP is main's, whose r14 slot is empty.
        var regs = S390Regs(0x866, s.MainSp, S390Bias + 0x712);
        var (chain, frames, _) = Run(UnwindMode.FramePointer, UnwindArch.S390x, s.Image, regs, s.Maps);
        Assert.Equal(S390Bias + 0x712, chain[1]);
        Assert.Equal(FrameFlags.ReturnAddress | FrameFlags.Unreliable, frames[1].Flags);
    }
}
