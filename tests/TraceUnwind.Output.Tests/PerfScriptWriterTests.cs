using System.Text;
using LinuxPerfScriptEventParser = Microsoft.Diagnostics.Tracing.StackSources.LinuxPerfScriptEventParser;
using TeStackFrame = Microsoft.Diagnostics.Tracing.StackSources.StackFrame;
using TraceUnwind.Model;
using TraceUnwind.Output.Tests.Support;
using TraceUnwind.Processes;

namespace TraceUnwind.Output.Tests;

public class PerfScriptWriterTests
{
    public static TheoryData<string> Captures() => new(FixtureSamples.AllNames());

    internal static string Script(IEnumerable<OwnedSample> samples, Symbols.ISymbolizer? symbolizer)
    {
        var ms = new MemoryStream();
        var w = new PerfScriptWriter(ms, symbolizer);
        OwnedSample.SendAll(samples, w);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Our script of real samples, parsed back by the test's reader, gives the same samples and frames.</summary>
    [Theory]
    [MemberData(nameof(Captures))]
    public void RoundTrip(string capture)
    {
        var c = FixtureSamples.Load(capture);
        var (parsed, sideband, _) = PerfScriptText.Parse(Script(c.Samples, c.Symbolizer));
        Assert.Empty(sideband);
        Assert.Equal(c.Samples.Count, parsed.Count);
        for (int i = 0; i < parsed.Count; i++)
        {
            var s = c.Samples[i];
            var p = parsed[i];
            var perf = c.PerfSamples[i];
            Assert.Equal((s.Comm, s.Pid, s.Tid, s.Cpu, s.Time, (ulong?)s.Period, s.Event), (p.Comm, p.Pid, p.Tid, p.Cpu, p.TimeNs, p.Period, p.Event));
            Assert.Equal(perf.Comm, p.Comm);
            Assert.Equal(perf.TimeNs, p.TimeNs);
            Assert.Equal(perf.Frames.Count, p.Frames.Count);
            for (int j = 0; j < p.Frames.Count; j++)
            {
                var f = s.Frames[j];
                var pf = p.Frames[j];
                var perfFrame = perf.Frames[j];
                Assert.Equal(f.Address, pf.Address);
                Assert.False(pf.Unreliable);
                // Symbols: perf's own text (name+0xoff), or [unknown] / (cookie) as perf printed them.
                Assert.Equal(perfFrame.Symbol, pf.Symbol);
                // dso: the kernel's path[+0xOFF] (OFF = ip - mapping start, computed here independently) for
                // user frames in a file mapping; perf's own dso text otherwise.
                if (f.Mapping is { IsFileBacked: true } m && f.Kind == FrameKind.User)
                {
                    Assert.Equal($"{m.Path}[+0x{f.Address - m.Start:x}]", pf.Dso);
                    Assert.Equal(perfFrame.Dso, m.Path);
                    // perf 6.1 prints the file-relative address; 7.2 the runtime ip.
                    Assert.Equal(perfFrame.Address, c.FileRelative ? f.Address - m.Start + m.PgOff : f.Address);
                }
                else
                {
                    Assert.Equal(perfFrame.Dso, pf.Dso);
                    Assert.Equal(perfFrame.Address, pf.Address);
                }
            }
        }
    }

    /// <summary>
    /// An independent parser, TraceEvent's serial perf-script reader (LinuxPerfScriptEventParser),
    /// reads our output and finds the same threads, times and frame addresses.
    /// </summary>
    [Theory]
    [InlineData("perf-defer-recur-defer")]
    [InlineData("perf-defer-bash-fp")]
    [InlineData("perf-bash_loop-fp")]
    [InlineData("perf-python_script-fp")]
    public void TraceEventReadsOurScript(string capture)
    {
        var c = FixtureSamples.Load(capture);
        var text = Script(c.Samples, c.Symbolizer);
        var events = new LinuxPerfScriptEventParser().ParseSkippingPreamble(new MemoryStream(Encoding.UTF8.GetBytes(text))).ToList();
        Assert.Equal(c.Samples.Count, events.Count);
        for (int i = 0; i < events.Count; i++)
        {
            var s = c.Samples[i];
            var e = events[i];
            Assert.Equal((s.Comm, s.Pid, s.Tid), (e.Command, e.ProcessID, e.ThreadID));
            Assert.Equal(s.Time / 1e6, e.TimeMSec, 3);
            var addresses = e.CallerStacks.OfType<TeStackFrame>().Select(f => Convert.ToUInt64(f.Address, 16)).ToArray();
            Assert.Equal(s.Frames.Select(f => f.Address), addresses);
        }
    }

    /// <summary>The documented layout, byte for byte, for the cases real captures here do not have (synthetic).</summary>
    [Fact]
    public void LayoutOfEdgeCases()
    {
        var libc = new Mapping(0x7f0000000000, 0x7f0000168000, 0x28000, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        var vdso = new Mapping(0x7ffd00000000, 0x7ffd00002000, 0, "[vdso]");
        var anon = new Mapping(0x7e0000000000, 0x7e0000100000, 0, "//anon");
        var sym = new DictionarySymbolizer();
        var kernelFrame = new Frame(0xffffffff8100012f, FrameKind.Kernel);
        sym.Add(kernelFrame, new Symbols.SymbolHit("entry_SYSCALL_64_after_hwframe", 0x76));
        var samples = new[]
        {
            new OwnedSample
            {
                Index = 0, Time = 134_860_713_123UL, Pid = 360, Tid = 361, Cpu = 1, Period = 1001001, Comm = "mt worker", Event = "cpu-clock",
                Frames =
                [
                    kernelFrame,
                    new Frame(0x7f0000001234, FrameKind.User, libc, FrameFlags.Unreliable),
                    new Frame(0x7ffd00000abc, FrameKind.User, vdso),
                    new Frame(0x7e0000000010, FrameKind.User, anon),
                    new Frame(0x6365722f6e69622f, FrameKind.User),
                ],
            },
            new OwnedSample
            {
                Index = 1, Time = 5_000_000_001UL, Pid = 360, Tid = 360, Period = 1, Comm = "recur", Event = "sched:sched_switch",
                Frames = [kernelFrame, new Frame(0xcf00000001, FrameKind.UserLost)],
            },
            new OwnedSample
            {
                Index = 2, Time = 5_000_000_002UL, Pid = 360, Tid = 360, Period = 1001001, Comm = "recur", Event = "cpu-clock",
                Frames = [kernelFrame, new Frame(0xd100000001, FrameKind.DeferredCookie)],
            },
            new OwnedSample
            {
                Index = 3, Time = 5_000_000_003UL, Pid = 360, Tid = 360, Comm = "recur", Kind = SampleKind.DeferredCallchain, Cookie = 0xd100000001,
                Frames = [new Frame(0x7f0000001234, FrameKind.User, libc)],
            },
            new OwnedSample { Index = 4, Time = 7, Pid = -1, Tid = 0, Period = 3, Comm = "swapper", Event = "cycles" },
        };
        string expected =
            "mt worker     360/361     [001]   134.860713123:    1001001 cpu-clock:\n" +
            "\tffffffff8100012f entry_SYSCALL_64_after_hwframe+0x76 ([kernel.kallsyms])\n" +
            "\t    7f0000001234 ? [unknown] (/usr/lib/x86_64-linux-gnu/libc.so.6[+0x1234])\n" +
            "\t    7ffd00000abc [unknown] ([vdso])\n" +
            "\t    7e0000000010 [unknown] (//anon)\n" +
            "\t6365722f6e69622f [unknown] ([unknown])\n" +
            "\n" +
            "recur     360/360         5.000000001:          1 sched:sched_switch:\n" +
            "\tffffffff8100012f entry_SYSCALL_64_after_hwframe+0x76 ([kernel.kallsyms])\n" +
            "\t               0 [deferred user stack lost] ([unknown])\n" +
            "\n" +
            "recur     360/360         5.000000002:    1001001 cpu-clock:\n" +
            "\tffffffff8100012f entry_SYSCALL_64_after_hwframe+0x76 ([kernel.kallsyms])\n" +
            "\t      d100000001 (cookie) ([unknown])\n" +
            "\n" +
            "recur     360/360         5.000000003: DEFERRED CALLCHAIN [cookie: d100000001]\n" +
            "\t    7f0000001234 [unknown] (/usr/lib/x86_64-linux-gnu/libc.so.6[+0x1234])\n" +
            "\n" +
            "swapper      -1/0           0.000000007:          3 cycles:\n" +
            "\n";
        string actual = Script(samples, sym);
        Assert.Equal(expected, actual);

        // And the reader used for the round trips takes it back.
        var (parsed, _, _) = PerfScriptText.Parse(actual);
        Assert.Equal(5, parsed.Count);
        Assert.Equal("mt worker", parsed[0].Comm);
        Assert.True(parsed[0].Frames[1].Unreliable);
        Assert.True(parsed[3].DeferredCallchain);
        Assert.Equal(0xd100000001UL, parsed[3].Cookie);
        Assert.Empty(parsed[4].Frames);
    }

    /// <summary>Flush pushes every complete sample to the stream: what a pipe reader sees.</summary>
    [Fact]
    public void FlushPushesCompleteSamples()
    {
        var c = FixtureSamples.Load("perf-defer-recur-defer");
        var ms = new MemoryStream();
        var w = new PerfScriptWriter(ms, c.Symbolizer);
        c.Samples[0].SendTo(w);
        c.Samples[1].SendTo(w);
        Assert.Equal(0, ms.Length); // buffered
        w.Flush();
        var (parsed, _, _) = PerfScriptText.Parse(Encoding.UTF8.GetString(ms.ToArray()));
        Assert.Equal(2, parsed.Count);
        Assert.EndsWith("\n\n", Encoding.UTF8.GetString(ms.ToArray()));
        w.Complete();
        Assert.Equal(2, PerfScriptText.Parse(Encoding.UTF8.GetString(ms.ToArray())).Samples.Count);
    }
}
