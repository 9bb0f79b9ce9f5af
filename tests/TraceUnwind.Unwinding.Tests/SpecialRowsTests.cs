using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// fixtures/unwind-special/: hand-written CFI assembled by gas 2.47 (sid chroot) into the rows the
/// compilers in fixtures/sframe/ never made: an outermost frame (<c>.cfi_undefined rip</c>: "RA
/// undefined"), a signal trampoline (<c>.cfi_signal_frame</c>: attr "S") and a return address kept
/// in r11 (a flex FDE: <c>RA = r11+0</c>). objdump 2.47's dump is the ground truth for the decode;
/// the walks run over SYNTHETIC stacks laid out from special.disasm.txt.
/// </summary>
public class SpecialRowsTests
{
    private static string Bin => Fixtures.Path("unwind-special", "special");

    private static AddressSpace Maps()
    {
        var maps = new AddressSpace();
        foreach (var m in StackcapTests.LoadMappings(ElfFile.Load(Bin), Bin, 0)) maps.Insert(m);
        return maps;
    }

    [Fact]
    public void DumpMatchesObjdump247()
    {
        var elf = ElfFile.Load(Bin);
        Assert.Equal(Fixtures.ReadText("unwind-special", "special.objdump-sframe.txt"), SFrameDumper.DumpFile(elf, "special"));
        var s = SFrameSection.FromElf(elf)!;
        Assert.True(s.Fdes[1].IsSignalFrame);
        Assert.Equal(SFrameFdeType.Flex, s.Fdes[2].FdeType);
        Assert.True(s.TryGetRule(0x401000, out var r) && r.IsOutermost);
        Assert.True(s.TryGetRule(0x40100c, out r));
        Assert.Equal(new CfaRule(7, 0), r.Cfa);
        Assert.Equal(ValueRule.InRegister(11), r.Ra);
    }

    private static (ulong[] Chain, Frame[] Frames, UnwindStop Stop) Walk(UnwindRegisters regs, StackImage img)
    {
        var frames = new Frame[16];
        int n = new UserStackUnwinder(UnwindMode.SFrame).Unwind(UnwindArch.X86_64, regs, img.From(regs.Sp), Maps(), frames, out var stop);
        return (Synthetic.Addresses(frames.AsSpan(0, n)), frames[..n], stop);
    }

    [Fact]
    public void ReturnAddressInRegisterThenOutermost()
    {
        // _start: call caller (ret 401007); caller: push %rbp; mov %rsp,%rbp; call ra_in_reg (ret 401019);
        // ra_in_reg sampled at 40100c, after pop %r11: SP back at caller's rbp, RA in r11.
        var img = new StackImage(0x7ffc_0000_0000, 0x1000, false);
        ulong s = img.High - 0x100;
        img.Put(s, 0);                                // caller's push %rbp (_start cleared rbp)
        img.Put(s + 8, 0x401007);                     // _start's call
        var regs = new UnwindRegisters(0x40100c, s, s);
        regs.Set(11, 0x401019);
        var (chain, frames, stop) = Walk(regs, img);
        Assert.Equal([0x40100cUL, 0x401019, 0x401007], chain);
        Assert.Equal(UnwindStop.Outermost, stop);     // _start: RA undefined
        Assert.All(frames, f => Assert.True(f.IsReliable));
    }

    [Fact]
    public void SignalTrampolineThenRegisterRuleInACaller()
    {
        // sigtramp sampled at 401008; "returns" to 40100f, where a signal interrupted ra_in_reg.
        // That pc is looked up as it is: the row at 40100f (sp+8, RA in r11); one byte back would
        // have been the row at 40100c (sp+0). It needs r11, which only the topmost frame has: the walk ends there.
        var img = new StackImage(0x7ffc_0000_0000, 0x1000, false);
        ulong s = img.High - 0x100;
        img.Put(s, 0x40100f);
        var regs = new UnwindRegisters(0x401008, s, 0);
        regs.Set(11, 0x401019);
        var (chain, frames, stop) = Walk(regs, img);
        Assert.Equal([0x401008UL, 0x40100f], chain);
        Assert.Equal(FrameFlags.None, frames[1].Flags);
        Assert.Equal(0x40100fUL, frames[1].LookupAddress);
        Assert.Equal(UnwindStop.RegisterUnavailable, stop);
    }
}
