using TraceUnwind.Model;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// fixtures/unwind-sid-fp/: the same <c>recur.c</c> built with <c>-O2 -fno-omit-frame-pointer</c>
/// and no SFrame, recorded the same way. Frame-pointer unwinding must give perf's (.eh_frame)
/// user frames up to and including the first libc frame, with one exception that is the
/// frame-pointer convention's own: <c>leaf</c> pushes no frame record (recur-fp.disasm.txt:
/// <c>1240 &lt;leaf&gt;: mov %rdi,%rax</c> ...), so rbp still points at its caller's record
/// and the caller (walk_b or mix) cannot be seen; the kernel's FP unwinder has the same gap.
/// </summary>
public class FramePointerCaptureTests
{
    private static string SymFs => Fixtures.Path("unwind-sid-fp", "symfs");

    [Fact]
    public void FramePointerUnwindingMatchesPerfScript()
    {
        var perf = SidCaptureTests.PerfScript("unwind-sid-fp");
        var samples = PerfDataMini.Read(Fixtures.ReadBytes("unwind-sid-fp", "perf.data"));
        Assert.Equal(perf.Count, samples.Count);
        Assert.Null(Unwinding.SFrame.SFrameSection.FromElf(ElfFile.Load(Path.Combine(SymFs, "tu", "recur-fp"))));
        var frames = new Frame[256];
        int leafSamples = 0, fullSamples = 0;
        foreach (var mode in new[] { UnwindMode.FramePointer, UnwindMode.Auto })
        {
            var unwinder = new UserStackUnwinder(mode, SymFs);
            for (int i = 0; i < samples.Count; i++)
            {
                var s = samples[i];
                var p = perf[i];
                Assert.Equal(p.Time, SidCaptureTests.TimeOf(s.Time));
                int n = unwinder.Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), s.Maps, frames, out var stop);
                var expected = p.UserFrames.ToList();
                int k = expected.FindIndex(f => f.Dso != "/tu/recur-fp");
                expected = expected[..(k + 1)];
                if (expected[0].Symbol.StartsWith("leaf+", StringComparison.Ordinal))
                {
                    expected.RemoveAt(1);
                    if (mode == UnwindMode.FramePointer) leafSamples++;
                }
                else if (mode == UnwindMode.FramePointer) fullSamples++;
                Assert.True(n >= expected.Count, $"sample {p.Time}: {n} frames, expected at least {expected.Count}; stop {stop}");
                for (int j = 0; j < expected.Count; j++)
                {
                    var f = frames[j];
                    ulong ours = f.Mapping!.FileOffset(f.LookupAddress);
                    Assert.True(ours == expected[j].Address && f.Mapping.Path == expected[j].Dso,
                        $"{mode} sample {p.Time} frame {j}: ours {ours:x} {f.Mapping.Path}, perf {expected[j].Address:x} {expected[j].Symbol}");
                }
            }
        }
        Assert.True(leafSamples > 10 && fullSamples > 3, $"{leafSamples} leaf samples, {fullSamples} others");
    }
}
