using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// <c>--call-graph dwarf</c> samples go to the <see cref="IUserStackUnwinder"/> with what perf captured:
/// arch from HEADER_ARCH, abi, <c>sample_regs_user</c>, the registers and the stack cut to
/// <c>dyn_size</c>, and the process's maps; the unwound frames follow the kernel frames. Checked on
/// real captures: perf 6.1's own unwinding starts at the same user ip as the registers we pass.
/// </summary>
public sealed class UnwinderContractTests
{
    private sealed class FakeUnwinder : IUserStackUnwinder
    {
        public readonly List<(UnwindArch Arch, ulong Abi, ulong Mask, int Regs, ulong Ip, ulong Sp, int Stack, string? Path)> Calls = new();

        public int Unwind(in CapturedUserStack stack, AddressSpace maps, Span<Frame> frames, out UnwindStop stop)
        {
            ulong ip = stack.Regs[8], sp = stack.Regs[7]; // x86-64 perf regs in mask order: AX BX CX DX SI DI BP SP IP ...
            var m = maps.Find(ip);
            Calls.Add((stack.Arch, stack.Abi, stack.RegsMask, stack.Regs.Length, ip, sp, stack.Stack.Length, m?.Path));
            frames[0] = new Frame(ip, FrameKind.User, m);
            frames[1] = new Frame(0x1234, FrameKind.User, null, FrameFlags.ReturnAddress);
            stop = UnwindStop.Outermost;
            return 2;
        }
    }

    [Theory]
    [InlineData("bash_loop")]
    [InlineData("python_script")]
    [InlineData("dlopen")]
    public void DwarfSamplesReachTheUnwinder(string workload)
    {
        var unwinder = new FakeUnwinder();
        var (ours, tally, session) = Run.File(Fixtures.Path("perf", workload, "dwarf.data"), new PerfReadOptions { Unwinder = unwinder });
        var perf = PerfScriptText.Parse(Fixtures.ReadText("perf", workload, "dwarf.script_F.txt"));
        Assert.Equal(0, tally.ErrorCount);
        Assert.Equal(perf.Count, ours.Count);
        Assert.Equal(ours.Count, unwinder.Calls.Count);
        int checkedAgainstPerf = 0;
        for (int i = 0; i < ours.Count; i++)
        {
            var call = unwinder.Calls[i];
            Assert.Equal((UnwindArch.X86_64, 2UL, 0xff0fffUL, 20), (call.Arch, call.Abi, call.Mask, call.Regs));
            // The valid part of the copy (dyn_size, 0 when the kernel could not read the stack), at most
            // what the attr asked for (sample_stack_user).
            Assert.InRange(call.Stack, 0, (int)session.Events[0].Attr.SampleStackUser);
            Assert.Equal(0, call.Stack % 8);
            var o = ours[i];
            int k = o.Frames.TakeWhile(f => f.Kind == FrameKind.Kernel).Count();
            Assert.Equal(k + 2, o.Frames.Count);
            Assert.Equal(call.Ip, o.Frames[k].Address);
            Assert.Equal(0x1234UL, o.Frames[k + 1].Address);
            if (k == 0) Assert.Equal(o.Ip, call.Ip); // taken in user mode: the registers are the sample's
            // perf's first user frame (its libunwind starts at the same registers) names the same dso and address.
            var pf = PerfScriptText.CollapseInlines(perf[i].Frames);
            if (pf.Count > k && pf[k].Dso != "[unknown]")
            {
                // An entry perf printed only as an inline expansion has no dso to compare; its address still counts.
                if (!pf[k].IsInlined) Assert.Equal(pf[k].Dso, call.Path);
                Assert.Equal(pf[k].Address, o.Frames[k].Mapping!.FileOffset(call.Ip));
                checkedAgainstPerf++;
            }
        }
        Assert.True(unwinder.Calls.Count(c => c.Stack > 0) > ours.Count / 2);
        Assert.True(checkedAgainstPerf >= ours.Count / 2, $"only {checkedAgainstPerf} of {ours.Count} user starts compared with perf");
    }
}
