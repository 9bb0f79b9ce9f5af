using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Model;
using TraceUnwind.Symbols;
using TraceUnwind.Testing;

namespace TraceUnwind.Ftrace.Tests;

/// <summary>A sink that copies every sample it is shown.</summary>
internal sealed class CollectingSink : ISampleSink
{
    public sealed record Copy(long Index, ulong Time, int Pid, int Tid, int Cpu, ulong Period, string Comm, string Event, Frame[] Frames);

    public readonly List<Copy> Samples = new();
    public int Flushes, Completes;

    public void OnSample(in Sample s) =>
        Samples.Add(new Copy(s.Index, s.Time, s.Pid, s.Tid, s.Cpu, s.Period, s.Comm, s.Event, s.Frames.ToArray()));

    public void Flush() => Flushes++;
    public void Complete() => Completes++;
}

public class FtraceSampleSourceTests
{
    private static CollectingSink Run(byte[] input, IMapsSource? maps = null, ErrorTally? tally = null)
    {
        var sink = new CollectingSink();
        var source = new FtraceSampleSource(new MemoryStream(input), "test", new FtraceSampleSourceOptions { Maps = maps }, tally ?? new ErrorTally());
        source.RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult();
        Assert.Equal(1, sink.Completes);
        Assert.Equal(sink.Samples.Count, source.SampleCount);
        return sink;
    }

    private static string Render(in Frame f) => f.Mapping is { IsFileBacked: true } m
        ? " => " + UserObj.Format(m, f.Address)
        : $" =>  <{f.Address:x16}>";

    /// <summary>
    /// Each capture's events, read independently (the capture tool's regex): an event followed by a
    /// <c>&lt;user stack trace&gt;</c> of the same pid and CPU is one sample; its frames rendered with
    /// their mappings read exactly as the rewrite of the same lines (itself checked against the kernel).
    /// </summary>
    [Theory]
    [MemberData(nameof(Captures))]
    public void CaptureSamplesMatchTheTracesEvents(string capture)
    {
        var raw = Fixtures.ReadBytes("ftrace", capture, "raw.txt");
        var snaps = FtraceTestData.LoadSnapshots(capture);
        var sink = Run(raw, snaps);
        var rewritten = FtraceTestData.Lines(Encoding.UTF8.GetString(FtraceTestData.Rewrite(raw, new RewriteOptions { Maps = FtraceTestData.LoadSnapshots(capture) })));
        var lines = FtraceTestData.Lines(Encoding.UTF8.GetString(raw));

        var expected = new List<(string Comm, int Pid, int Cpu, string Ts, string Event, List<int> FrameLines)>();
        (string Comm, int Pid, int Cpu, string Ts, string Event)? last = null;
        for (int i = 0; i < lines.Count; i++)
        {
            var m = FtraceTestData.HeaderRegex().Match(lines[i]);
            if (!m.Success) { last = null; continue; }
            int pid = int.Parse(m.Groups["pid"].Value, CultureInfo.InvariantCulture), cpu = int.Parse(m.Groups["cpu"].Value, CultureInfo.InvariantCulture);
            string rest = m.Groups["rest"].Value;
            if (rest != "<user stack trace>") { last = (m.Groups["comm"].Value, pid, cpu, m.Groups["ts"].Value, FtraceTestData.EventName(rest)); continue; }
            (string Comm, int Pid, int Cpu, string Ts, string Event) owner =
                last is { } l && l.Pid == pid && l.Cpu == cpu ? l : (m.Groups["comm"].Value, pid, cpu, m.Groups["ts"].Value, "user_stack");
            var frames = new List<int>();
            for (int k = i + 1; k < lines.Count && lines[k].StartsWith(" =>", StringComparison.Ordinal); k++) frames.Add(k);
            expected.Add((owner.Comm, owner.Pid, owner.Cpu, owner.Ts, owner.Event, frames));
            last = null;
        }
        Assert.Equal(expected.Count, sink.Samples.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var e = expected[i];
            var s = sink.Samples[i];
            Assert.Equal(i, s.Index);
            Assert.Equal(e.Comm, s.Comm);
            Assert.Equal(e.Pid, s.Tid);
            Assert.Equal(snaps.ProcessOf(e.Pid), s.Pid);
            Assert.Equal(e.Cpu, s.Cpu);
            Assert.Equal(e.Event, s.Event);
            Assert.Equal(1UL, s.Period);
            Assert.True(TraceTimestamp.TryParse(Encoding.ASCII.GetBytes(e.Ts), out var ts));
            Assert.Equal(ts.Value, s.Time);
            Assert.Equal(e.FrameLines.Count, s.Frames.Length);
            for (int k = 0; k < s.Frames.Length; k++)
            {
                var f = s.Frames[k];
                Assert.Equal(FrameKind.User, f.Kind);
                Assert.Equal(k == 0 ? FrameFlags.None : FrameFlags.ReturnAddress, f.Flags);
                Assert.Equal(Convert.ToUInt64(lines[e.FrameLines[k]][6..22], 16), f.Address);
                Assert.Equal(rewritten[e.FrameLines[k]], Render(f));
            }
        }
    }

    public static TheoryData<string> Captures() => new(FtraceTestData.Captures);

    [Theory]
    [InlineData("sym.txt", false)]
    [InlineData("symaddr.txt", true)]
    public void ResolvedLinesBecomeFramesThatRenderTheSame(string file, bool withAddress)
    {
        // Without any maps source: the kernel's own path[+0xOFF] carries the mapping.
        var sink = Run(Fixtures.ReadBytes("ftrace", "bash_loop", file));
        var frameLines = FtraceTestData.Lines(Fixtures.ReadText("ftrace", "bash_loop", file)).Where(l => l.StartsWith(" =>", StringComparison.Ordinal)).ToList();
        var frames = sink.Samples.SelectMany(s => s.Frames).ToList();
        Assert.Equal(frameLines.Count, frames.Count);
        for (int i = 0; i < frames.Count; i++)
        {
            var line = frameLines[i];
            var f = frames[i];
            if (line.StartsWith(" =>  <", StringComparison.Ordinal))
            {
                Assert.Null(f.Mapping);
                Assert.Equal(line, Render(f));
                continue;
            }
            Assert.True(f.HasFileMapping);
            Assert.Equal(line, " => " + UserObj.Format(f.Mapping!, f.Address, withAddress));
        }
    }

    [Theory]
    [InlineData("40_stacktrace_option_sym-userobj.txt", false)]
    [InlineData("41_stacktrace_option_sym-offset.txt", false)]
    [InlineData("42_stacktrace_option_sym-offset_sym-addr.txt", true)]
    public void KernelAndUserBlocksMakeOneSample(string file, bool kernelAddresses)
    {
        var sink = Run(Fixtures.ReadBytes("ftrace", "formats", file));
        var events = FtraceTestData.Lines(Fixtures.ReadText("ftrace", "formats", file)).Count(l => l.Contains(": sys_openat(", StringComparison.Ordinal));
        Assert.Equal(events, sink.Samples.Count);
        foreach (var s in sink.Samples)
        {
            Assert.Equal("sys_openat", s.Event);
            Assert.Equal("probe_helper", s.Comm);
            var kernel = s.Frames.TakeWhile(f => f.Kind == FrameKind.Kernel).ToList();
            Assert.Equal(["ftrace_syscall_enter", "syscall_trace_enter", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"], kernel.Select(f => f.Symbol));
            Assert.All(kernel, f => Assert.Equal(kernelAddresses, f.Address >= 0xffffffff80000000));
            Assert.All(s.Frames.Skip(kernel.Count), f => Assert.Equal(FrameKind.User, f.Kind));
            Assert.True(s.Frames.Length > kernel.Count);
        }
        Assert.Equal(0xffffffff814b0eb5UL, kernelAddresses ? sink.Samples[0].Frames[0].Address : 0xffffffff814b0eb5UL);
    }

    [Fact]
    public void StacksWhoseEventWasLostAreOrphans()
    {
        // trace_pipe after the ring buffer overwrote events: "CPU:0 [LOST 1457 EVENTS]" then a user
        // stack whose event is gone.
        var text = Fixtures.ReadText("ftrace", "formats", "61_lost_events_overwrite1_trace_pipe.txt");
        var sink = Run(Encoding.UTF8.GetBytes(text));
        var lines = FtraceTestData.Lines(text);
        Assert.StartsWith("CPU:0 [LOST", lines[0]);
        Assert.EndsWith("<user stack trace>", lines[1]);
        Assert.Equal("user_stack", sink.Samples[0].Event);
        int userHeaders = lines.Count(l => l.EndsWith("<user stack trace>", StringComparison.Ordinal));
        Assert.Equal(userHeaders, sink.Samples.Count);
        Assert.Equal(2, sink.Samples.Count(s => s.Event == "user_stack"));
    }

    [Fact]
    public void KernelThreadsHaveEmptyUserStacks()
    {
        var sink = Run(Fixtures.ReadBytes("ftrace", "formats", "50_sched_switch_all_tasks_kthreads.txt"));
        var idle = sink.Samples.Where(s => s.Tid == 0).ToList();
        Assert.NotEmpty(idle);
        Assert.All(idle, s => { Assert.Equal("<idle>", s.Comm); Assert.Empty(s.Frames); Assert.Equal("sched_switch", s.Event); });
        var kworker = sink.Samples.First(s => s.Comm == "kworker/1:1");
        Assert.Equal(41, kworker.Tid);
        Assert.Empty(kworker.Frames);
    }

    [Fact]
    public void TraceCmdReportFormsGiveTheSameSamples()
    {
        var def = Run(Fixtures.ReadBytes("trace-cmd", "report_default.txt"));
        var r = Run(Fixtures.ReadBytes("trace-cmd", "report_-R.txt"));
        var l = Run(Fixtures.ReadBytes("trace-cmd", "report_-l.txt"));
        var t = Run(Fixtures.ReadBytes("trace-cmd", "report_-t.txt"));
        Assert.Equal(139, def.Samples.Count);
        foreach (var other in new[] { r, l, t })
        {
            Assert.Equal(def.Samples.Count, other.Samples.Count);
            for (int i = 0; i < def.Samples.Count; i++)
            {
                Assert.Equal(def.Samples[i].Tid, other.Samples[i].Tid);
                Assert.Equal(def.Samples[i].Cpu, other.Samples[i].Cpu);
                Assert.Equal(def.Samples[i].Event, other.Samples[i].Event);
                Assert.Equal(def.Samples[i].Frames.Select(f => f.Address), other.Samples[i].Frames.Select(f => f.Address));
                // -t prints ns, the others the same time rounded to µs.
                Assert.InRange((long)other.Samples[i].Time - (long)def.Samples[i].Time, -500, 500);
            }
        }
        // The default form's frames are the non-zero 0x... of each user_stack event; -R adds the tgid.
        var first = def.Samples.First(s => s.Frames.Length > 0);
        Assert.Equal(0x7f224749f353UL, first.Frames[0].Address);
        Assert.Equal("sched_process_fork", first.Event);
        Assert.Equal(-1, first.Pid);
        Assert.Equal(13700, r.Samples[def.Samples.IndexOf(first)].Pid);
        // The kernel's own rendering of the same buffer (record-tgid) gives the same frames.
        var kernel = Run(Fixtures.ReadBytes("trace-cmd", "kernel_trace_nosym.txt"));
        Assert.Equal(def.Samples.Count, kernel.Samples.Count);
        for (int i = 0; i < def.Samples.Count; i++)
        {
            Assert.Equal(def.Samples[i].Frames.Select(f => f.Address), kernel.Samples[i].Frames.Select(f => f.Address));
            Assert.Equal(def.Samples[i].Time, kernel.Samples[i].Time);
            if (kernel.Samples[i].Tid != 0) Assert.Equal(r.Samples[i].Pid, kernel.Samples[i].Pid);
        }
    }

    [Theory]
    [InlineData("08_sym-userobj_no-context-info.txt", -1)]
    [InlineData("09_sym-userobj_latency-format.txt", 17008)]
    [InlineData("10_sym-userobj_latency-format_verbose.txt", 17008)]
    [InlineData("11_sym-userobj_verbose_only.txt", 17008)]
    [InlineData("17_sym-userobj_record-tgid.txt", 17008)]
    public void OtherLayoutsGiveTheSameStacks(string file, int tid)
    {
        var reference = Run(Fixtures.ReadBytes("ftrace", "formats", "04_sym-userobj.txt"));
        var sink = Run(Fixtures.ReadBytes("ftrace", "formats", file));
        Assert.Equal(reference.Samples.Count, sink.Samples.Count);
        for (int i = 0; i < sink.Samples.Count; i++)
        {
            Assert.Equal(tid, sink.Samples[i].Tid);
            Assert.Equal(reference.Samples[i].Frames.Select(f => Render(f)), sink.Samples[i].Frames.Select(f => Render(f)));
            if (tid > 0) Assert.Equal(reference.Samples[i].Time / 1000, sink.Samples[i].Time / 1000);
        }
        Assert.Equal(file.StartsWith("17", StringComparison.Ordinal) ? 17008 : -1, sink.Samples[0].Pid);
    }

    [Fact]
    public void LineTooBigIsCounted()
    {
        var tally = new ErrorTally();
        var sink = Run(Fixtures.ReadBytes("ftrace", "formats", "70_odd_paths_sym-userobj.txt"), tally: tally);
        Assert.Equal(2, tally.CountOf("ftrace.stack.line-too-big"));
        var big = sink.Samples.Where(s => s.Tid == 17372 && s.Frames.Any(f => f.Mapping?.Path.Length > 3000)).ToList();
        Assert.Equal(2, big.Count);
        Assert.All(big, s => Assert.Equal(2, s.Frames.Length));
    }

    [Fact]
    public async Task SinkIsFlushedWhenThePipeGoesIdle()
    {
        var input = new System.IO.Pipelines.Pipe();
        var sink = new CollectingSink();
        var source = new FtraceSampleSource(input.Reader.AsStream(), "pipe", null, new ErrorTally());
        var run = source.RunAsync(sink, CancellationToken.None);
        var block = Encoding.UTF8.GetBytes("    probe_helper-17388   [001] .....  3682.364400: sys_openat(x)\n    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\n =>  <0000562c3a152202>\n");
        await input.Writer.WriteAsync(block);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (sink.Flushes == 0 && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.True(sink.Flushes > 0);
        Assert.Empty(sink.Samples);   // the event may still get more blocks: not emitted yet
        await input.Writer.CompleteAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Single(sink.Samples);
        Assert.Equal("sys_openat", sink.Samples[0].Event);
    }
}
