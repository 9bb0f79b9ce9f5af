using System.Globalization;
using System.Text.RegularExpressions;
using TraceUnwind.Testing;
using Xunit.Abstractions;
using static TraceUnwind.Cli.Tests.FtracePerfCapture;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// <c>traceunwind rewrite raw.txt --perf perf.data --clock-offset X</c> on the real captures in
/// <c>fixtures/ftrace-perf/</c> (ftrace raw and sym-userobj instances + <c>perf record -e dummy</c>, recorded
/// together on this machine), against two ground truths that do not come from our code: the kernel's own
/// sym-userobj rendering of the same events (sym.txt), and perf's own text of its side-band records
/// (<c>perf script --show-mmap-events --show-task-events</c>), read by <see cref="PerfModel"/>.
/// </summary>
public sealed class RewritePerfGroundTruthTests(ITestOutputHelper output)
{
    private sealed record Counts(int Equal, int BothRaw, int Better, int Corrected, int Worse, int Unpaired);

    private static string Seconds(long ns) => (ns / 1e9).ToString("0.#########", CultureInfo.InvariantCulture);

    private static long OffsetOf(string capture) => capture == "localclock" ? LocalClockOffsetNs() : 0;

    private static ulong Address(string rawFrame)
    {
        var m = RawFrame().Match(rawFrame);
        Assert.True(m.Success, rawFrame);
        return ulong.Parse(m.Groups["addr"].Value, NumberStyles.HexNumber);
    }

    private static List<string> Rewrite(params string[] args)
    {
        var r = Cli.Run(["rewrite", .. args]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Code);
        return Cli.Lines(r.Stdout);
    }

    /// <summary>
    /// Checks every line of <paramref name="ours"/> against raw.txt, perf's account and the kernel's, and
    /// classifies the user frames: equal to the kernel's line, both raw, better (the kernel printed raw
    /// because the task had exited or lost its mm by read time; we resolve it), corrected (the kernel resolved
    /// a pre-exec address in the image the task exec'd later), worse (the kernel resolved it, we cannot).
    /// </summary>
    private Counts Check(string capture, List<string> ours, long offsetNs, bool perfHasDataMmaps)
    {
        var raw = Cli.Lines(CaptureText(capture, "raw.txt"));
        var sym = Cli.Lines(CaptureText(capture, "sym.txt"));
        var model = PerfModel.Load(capture);
        Assert.Equal(raw.Count, ours.Count);

        var rawBlocks = Blocks(raw);
        var frameLines = rawBlocks.SelectMany(b => b.FrameLines).ToHashSet();
        for (int i = 0; i < raw.Count; i++)
            if (!frameLines.Contains(i)) Assert.Equal(raw[i], ours[i]);   // everything but user frames passes through

        // Every frame is what perf's own records say about the event-time address space.
        foreach (var b in rawBlocks)
            foreach (int line in b.FrameLines)
                Assert.True(model.ExpectedLine(b.Pid, b.TimeNs - offsetNs, Address(raw[line])) == ours[line],
                    $"{capture}:{line + 1}: {raw[b.HeaderLine]}\n  raw  {raw[line]}\n  ours {ours[line]}\n  perf {model.ExpectedLine(b.Pid, b.TimeNs - offsetNs, Address(raw[line]))}");

        int equal = 0, bothRaw = 0, better = 0, corrected = 0, worse = 0;
        var pairs = Pair(rawBlocks, Blocks(sym));
        foreach (var (a, k) in pairs)
        {
            Assert.Equal(a.FrameLines.Count, k.FrameLines.Count);
            for (int f = 0; f < a.FrameLines.Count; f++)
            {
                string mine = ours[a.FrameLines[f]], kernel = sym[k.FrameLines[f]], where = $"{capture}:{a.FrameLines[f] + 1}";
                bool kernelResolved = UserObjFrame().IsMatch(kernel), weResolved = UserObjFrame().IsMatch(mine);
                if (mine == kernel) { if (kernelResolved) equal++; else bothRaw++; }
                else if (!kernelResolved)
                {
                    Assert.Equal(raw[a.FrameLines[f]], kernel);   // the kernel's raw form is the raw instance's line
                    better++;
                }
                else if (weResolved)
                {
                    // The kernel looked a pre-exec address up in the image the task exec'd afterwards.
                    Assert.True(model.ExecsAfter(a.Pid, a.TimeNs - offsetNs), $"{where}: kernel {kernel}, ours {mine}, and no exec after the event");
                    corrected++;
                }
                else
                {
                    // perf without -d records executable mappings only: an address in a read-only segment
                    // (a stray return address) has no mapping on our side.
                    Assert.False(perfHasDataMmaps, $"{where}: kernel {kernel}, ours {mine}");
                    Assert.Null(model.Find(a.Pid, a.TimeNs - offsetNs, Address(raw[a.FrameLines[f]])));
                    worse++;
                }
            }
        }
        int unpaired = rawBlocks.Count - pairs.Count;
        var counts = new Counts(equal, bothRaw, better, corrected, worse, unpaired);
        output.WriteLine($"{capture}: {rawBlocks.Sum(b => b.FrameLines.Count)} user frames in {rawBlocks.Count} blocks ({unpaired} blocks only in raw.txt): {counts}");
        return counts;
    }

    [Fact]
    public void PerfClockCaptureUnderHoldGivesTheKernelsLineOnEveryFrameItResolved()
    {
        // trace_clock perf + perf's default clock: offset 0; hold stopped every task at exec and exit until
        // both readers had printed, so the kernel rendered nearly everything in the right image.
        var ours = Rewrite(CapturePath("perfclock", "raw.txt"), "--perf", CapturePath("perfclock", "perf.data"), "--clock-offset", "0");
        Assert.Contains("mmap_data: 1", CaptureText("perfclock", "perf.evlist.txt"));
        var c = Check("perfclock", ours, 0, perfHasDataMmaps: true);
        Assert.Equal(0, c.Worse);
        Assert.Equal(0, c.Corrected);
        Assert.Equal(0, c.Unpaired);
        // sched_process_exit stacks of the last task of a process: it has no mm left when the line is read;
        // perf's maps still name them.
        var sym = Cli.Lines(CaptureText("perfclock", "sym.txt"));
        var raw = Cli.Lines(CaptureText("perfclock", "raw.txt"));
        foreach (var (a, k) in Pair(Blocks(raw), Blocks(sym)).Where(p => p.A.EventKey.StartsWith("sched_process_exit", StringComparison.Ordinal) && p.A.EventKey.EndsWith("group_dead=true", StringComparison.Ordinal)))
        {
            Assert.Equal(raw[a.FrameLines[0]], sym[k.FrameLines[0]]);
            Assert.Matches(@"^ => /usr/lib/x86_64-linux-gnu/libc\.so\.6\[\+0x[0-9a-f]+\]$", ours[a.FrameLines[0]]);
        }
    }

    [Fact]
    public void LocalClockCaptureReadLateIsBetterThanTheKernel()
    {
        // trace_clock local against perf's default clock: --clock-offset from the capture's own clk.txt.
        long offset = LocalClockOffsetNs();
        Assert.InRange(offset, 27_000_000, 27_100_000);   // clock/clock_offset.txt measured 27.06 ms on this boot
        var ours = Rewrite(CapturePath("localclock", "raw.txt"), "--perf", CapturePath("localclock", "perf.data"), "--clock-offset", Seconds(offset));
        Assert.DoesNotContain("mmap_data", CaptureText("localclock", "perf.evlist.txt"));
        var c = Check("localclock", ours, offset, perfHasDataMmaps: false);

        // The sym reader started after the children had exited, so the kernel left all their frames raw;
        // Check() has required ours to be perf's answer for each. The blocks only the raw instance has: the
        // shell's writes that switched the sym instance on (its set_event_pid and tracing_on; the clk instance's
        // were recorded by both).
        var raw = Cli.Lines(CaptureText("localclock", "raw.txt"));
        var sym = Cli.Lines(CaptureText("localclock", "sym.txt"));
        var model = PerfModel.Load("localclock");
        int main = Blocks(raw)[0].Pid, childFrames = 0;
        foreach (var (a, k) in Pair(Blocks(raw), Blocks(sym)).Where(p => model.ProcessOf(p.A.Pid) != main))
            foreach (var (rl, kl) in a.FrameLines.Zip(k.FrameLines))
            {
                Assert.Equal(raw[rl], sym[kl]);
                childFrames++;
            }
        Assert.InRange(c.Better, childFrames - c.BothRaw, raw.Count);
        Assert.Equal(2, c.Unpaired);
        Assert.All(Blocks(raw).Take(c.Unpaired), b => Assert.Contains("flags: 0x241", b.EventKey));   // O_WRONLY|O_CREAT|O_TRUNC: `echo $$ > set_event_pid`
    }

    [Fact]
    public void ClockOffsetIsApplied()
    {
        // Without the offset the events are looked up 27 ms late, after every exec of the workload: the output
        // is what perf's records say for that wrong moment, and differs from the right one exactly there.
        long offset = LocalClockOffsetNs();
        var right = Rewrite(CapturePath("localclock", "raw.txt"), "--perf", CapturePath("localclock", "perf.data"), "--clock-offset", Seconds(offset));
        var wrong = Rewrite(CapturePath("localclock", "raw.txt"), "--perf", CapturePath("localclock", "perf.data"));
        var raw = Cli.Lines(CaptureText("localclock", "raw.txt"));
        var model = PerfModel.Load("localclock");
        int differ = 0;
        foreach (var b in Blocks(raw))
            foreach (int line in b.FrameLines)
            {
                Assert.Equal(model.ExpectedLine(b.Pid, b.TimeNs, Address(raw[line])), wrong[line]);
                if (wrong[line] != right[line]) differ++;
            }
        output.WriteLine($"frames that change without --clock-offset: {differ}");
        Assert.NotEqual(0, differ);
        // Only events before an exec of their process can change: after it, the image stays the same.
        foreach (var b in Blocks(raw))
            foreach (int line in b.FrameLines)
                if (wrong[line] != right[line]) Assert.True(model.ExecsAfter(b.Pid, b.TimeNs - offset), $"localclock:{line + 1}");
    }

    [Fact]
    public void OffsetEstimatedFromForkAndExitRecordsIsCloseEnough()
    {
        // Without a second instance in perf's clock the offset can be read off the data: each
        // sched_process_fork/exit line has a PERF_RECORD_FORK/EXIT of the same task. perf writes FORK a few µs
        // before the fork tracepoint fires and EXIT a few µs after the exit tracepoint, so the two kinds of
        // pairs err in opposite directions; the mean of their medians lands within ~20 µs.
        var raw = Cli.Lines(CaptureText("localclock", "raw.txt"));
        var perf = Cli.Lines(CaptureText("localclock", "perf.sideband.txt"));
        static long PerfTime(string line) => (long)(decimal.Parse(Regex.Match(line, @"(\d+\.\d{9}): PERF_RECORD").Groups[1].Value, CultureInfo.InvariantCulture) * 1_000_000_000m);
        var forks = new List<long>();
        var exits = new List<long>();
        foreach (var line in raw)
        {
            var m = EventLine().Match(line);
            if (!m.Success) continue;
            string rest = m.Groups["rest"].Value;
            if (Regex.Match(rest, @"^sched_process_fork: .* child_pid=(\d+)$") is { Success: true } f)
                forks.Add(TimeNs(m) - PerfTime(perf.Single(l => Regex.IsMatch(l, $@"PERF_RECORD_FORK\(\d+:{f.Groups[1].Value}\)"))));
            if (Regex.Match(rest, @"^sched_process_exit: comm=.* pid=(\d+) ") is { Success: true } e)
                exits.Add(TimeNs(m) - PerfTime(perf.Single(l => Regex.IsMatch(l, $@"PERF_RECORD_EXIT\(\d+:{e.Groups[1].Value}\)"))));
        }
        static long Median(List<long> l) => l.Order().ElementAt(l.Count / 2);
        long estimate = (Median(forks) + Median(exits)) / 2, measured = LocalClockOffsetNs();
        output.WriteLine($"fork pairs {forks.Count} (median {Median(forks)} ns), exit pairs {exits.Count} (median {Median(exits)} ns): estimate {estimate} ns, measured {measured} ns");
        Assert.InRange(Math.Abs(estimate - measured), 0, 25_000);
        // And it is good enough: the same output as with the measured offset.
        Assert.Equal(
            Rewrite(CapturePath("localclock", "raw.txt"), "--perf", CapturePath("localclock", "perf.data"), "--clock-offset", Seconds(measured)),
            Rewrite(CapturePath("localclock", "raw.txt"), "--perf", CapturePath("localclock", "perf.data"), "--clock-offset", Seconds(estimate)));
    }

    [Fact]
    public void MapsSnapshotsAgreeWithPerfSideband()
    {
        // The same capture through hold's /proc/PID/maps snapshots: every line equal to the --perf output.
        var maps = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"tu-e2e-maps-{Guid.NewGuid():N}.txt");
        File.WriteAllText(maps, SnapshotsAsMapsOption("perfclock"));
        try
        {
            var viaMaps = Rewrite(CapturePath("perfclock", "raw.txt"), "--maps", maps);
            var viaPerf = Rewrite(CapturePath("perfclock", "raw.txt"), "--perf", CapturePath("perfclock", "perf.data"), "--clock-offset", "0");
            Assert.Equal(viaPerf, viaMaps);
            Check("perfclock", viaMaps, 0, perfHasDataMmaps: true);
        }
        finally
        {
            File.Delete(maps);
        }
    }

    [Theory]
    [InlineData("perfclock")]
    [InlineData("localclock")]
    public void KeepAddressAppendsTheRawAddressToEveryRewrittenFrame(string capture)
    {
        string off = Seconds(OffsetOf(capture));
        var plain = Rewrite(CapturePath(capture, "raw.txt"), "--perf", CapturePath(capture, "perf.data"), "--clock-offset", off);
        var kept = Rewrite(CapturePath(capture, "raw.txt"), "--perf", CapturePath(capture, "perf.data"), "--clock-offset", off, "--keep-address");
        var raw = Cli.Lines(CaptureText(capture, "raw.txt"));
        Assert.Equal(plain.Count, kept.Count);
        int rewritten = 0;
        for (int i = 0; i < raw.Count; i++)
        {
            if (plain[i] == raw[i]) { Assert.Equal(raw[i], kept[i]); continue; }
            Assert.Equal($"{plain[i]} <{Address(raw[i]):x16}>", kept[i]);
            rewritten++;
        }
        Assert.Equal(plain.Count(l => UserObjFrame().IsMatch(l)), rewritten);
    }
}
