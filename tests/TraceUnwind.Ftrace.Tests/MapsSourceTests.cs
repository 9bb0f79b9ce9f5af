using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Processes;
using TraceUnwind.Testing;
using Xunit.Abstractions;

namespace TraceUnwind.Ftrace.Tests;

public class MapsSnapshotsTests
{
    [Theory]
    [InlineData("==> /proc/12008/maps <==", 12008, 12008, null)]
    [InlineData("==> /proc/12537/task/12542/maps <==", 12537, 12542, null)]
    [InlineData("==> /proc/12008/maps <== @ 3151.151372", 12008, 12008, "3151.151372")]
    [InlineData("==> /proc/12537/task/12542/maps <== @ 3151.5", 12537, 12542, "3151.5")]
    [InlineData("==> /host/proc/5/maps <== @ 367698", 5, 5, "367698")]
    [InlineData("==> /proc/self/maps <==", 0, 0, "bad")]
    [InlineData("==> /proc/12/status <==", 0, 0, "bad")]
    [InlineData("==> /proc/12/maps <== @ soon", 0, 0, "bad")]
    [InlineData("==> /proc/12/maps", 0, 0, "bad")]
    public void Headers(string line, int tgid, int tid, string? time)
    {
        bool ok = MapsSnapshotReader.TryParseHeader(Encoding.UTF8.GetBytes(line), out int g, out int t, out var when);
        if (time == "bad") { Assert.False(ok); return; }
        Assert.True(ok);
        Assert.Equal(tgid, g);
        Assert.Equal(tid, t);
        if (time is null) Assert.Null(when);
        else
        {
            Assert.True(SnapshotTime.TryParse(Encoding.ASCII.GetBytes(time), out var expected));
            Assert.Equal(expected, when);
        }
    }

    [Fact]
    public void BadInputNamesFileAndLine()
    {
        var ex = Assert.Throws<TraceFormatException>(() => MapsSnapshotReader.Read(
            Encoding.UTF8.GetBytes(Fixtures.ReadText("ftrace", "formats", "helper.maps")), "helper.maps", new MapsSnapshots()));
        Assert.StartsWith("helper.maps:1 (byte offset 0): ", ex.Message);
        Assert.Contains("==> /proc/PID/maps <==", ex.Message);

        var ex2 = Assert.Throws<TraceFormatException>(() => MapsSnapshotReader.Read(
            Encoding.UTF8.GetBytes("==> /proc/1/maps <==\n\n==> /proc/x/maps <==\n"), "m.txt", new MapsSnapshots()));
        Assert.StartsWith("m.txt:3 (byte offset 22): ", ex2.Message);

        // A damaged line inside a section is skipped and counted.
        var tally = new ErrorTally();
        var snaps = new MapsSnapshots();
        MapsSnapshotReader.Read(Encoding.UTF8.GetBytes("==> /proc/7/maps <==\n00400000-00401000 r-xp 00000000 fe:00 1 /bin/x\nnot a maps line\n"), "m", snaps, tally);
        Assert.Equal(1, tally.CountOf(MapsSnapshotReader.BadLineCode));
        Assert.StartsWith("m:3 (byte offset 68): not a /proc/PID/maps line", tally.ExamplesOf(MapsSnapshotReader.BadLineCode)[0]);
        Assert.Equal("/bin/x", snaps.FindVma(7, new TracePoint(default, 0), 0x400010)?.Path);
    }

    private static IEnumerable<Mapping> MapsFile(string capture, string name) =>
        ProcMapsParser.ParseAll(Fixtures.ReadBytes("ftrace", capture, "maps", name));

    private static TracePoint At(ulong ns, long ordinal = 0) => new(new TraceTimestamp(ns, TimestampKind.Nanoseconds), ordinal);

    private static SnapshotTime Sec(ulong s) => new(s, 0);

    /// <summary>
    /// The issue's rule on bash_loop's child 12009 (hold's image, then ls): the latest snapshot
    /// taken before the process's next exec after the event, else the nearest in time.
    /// </summary>
    [Fact]
    public void SelectionRule()
    {
        var snaps = new MapsSnapshots();
        snaps.Add(12009, 12009, Sec(10), MapsFile("bash_loop", "00003-12009-12009-pre-exec.maps"), "pre-exec");
        snaps.Add(12009, 12009, Sec(20), MapsFile("bash_loop", "00004-12009-12009-post-exec.maps"), "post-exec");
        snaps.Add(12009, 12009, Sec(30), MapsFile("bash_loop", "00005-12009-12009-exit.maps"), "exit");
        snaps.OnExec(12009, At(20_000_000_000, 100));
        Assert.Equal("pre-exec", snaps.SelectedOrigin(12009, At(5_000_000_000)));        // before every snapshot: next exec at 20
        Assert.Equal("pre-exec", snaps.SelectedOrigin(12009, At(15_000_000_000)));
        Assert.Equal("pre-exec", snaps.SelectedOrigin(12009, At(20_000_000_000, 99)));   // same µs, earlier line: before the exec
        Assert.Equal("exit", snaps.SelectedOrigin(12009, At(20_000_000_000, 101)));      // the exec's own stack: after it
        Assert.Equal("exit", snaps.SelectedOrigin(12009, At(25_000_000_000)));           // post-exec is older than exit: latest wins
        Assert.Equal("exit", snaps.SelectedOrigin(12009, At(99_000_000_000)));
        Assert.Null(snaps.SelectedOrigin(4242, At(1)));
        // Before the exec the child still runs its parent's image (bash), after it ls.
        Assert.Equal("/usr/bin/bash", snaps.FindVma(12009, At(15_000_000_000), 0x55f56a1a5000)?.Path);
        Assert.Equal("/usr/bin/ls", snaps.FindVma(12009, At(25_000_000_000), 0x562daae13100)?.Path);
        Assert.NotEqual("/usr/bin/bash", snaps.FindVma(12009, At(25_000_000_000), 0x55f56a1a5000)?.Path);

        // Nothing before the next exec: the nearest in time.
        var late = new MapsSnapshots();
        late.Add(1, 1, Sec(30), MapsFile("bash_loop", "00005-12009-12009-exit.maps"), "exit");
        late.Add(1, 1, Sec(50), MapsFile("bash_loop", "00005-12009-12009-exit.maps"), "later");
        late.OnExec(1, At(20_000_000_000, 1));
        Assert.Equal("exit", late.SelectedOrigin(1, At(10_000_000_000)));
    }

    [Fact]
    public void UntimedSnapshotsCountAsTakenAtTheEnd()
    {
        var snaps = new MapsSnapshots();
        snaps.Add(5, 5, null, MapsFile("bash_loop", "00004-12009-12009-post-exec.maps"), "untimed");
        snaps.Add(5, 5, Sec(30), MapsFile("bash_loop", "00005-12009-12009-exit.maps"), "timed");
        snaps.OnExec(5, At(40_000_000_000, 9));
        // Before the exec at 40 only the timed one qualifies: untimed = end of trace, after the exec.
        Assert.Equal("timed", snaps.SelectedOrigin(5, At(35_000_000_000)));
        // After it: the untimed one is the latest.
        Assert.Equal("untimed", snaps.SelectedOrigin(5, At(45_000_000_000, 10)));
        // Nothing before the next exec: the nearest in time, the untimed one counting as taken at
        // the end of the trace once that is known (a file), at +infinity before (a pipe).
        var near = new MapsSnapshots();
        near.Add(6, 6, null, [], "untimed");
        near.Add(6, 6, Sec(200), [], "timed-after-the-trace");
        near.OnExec(6, At(95_000_000_000, 5));
        Assert.Equal("timed-after-the-trace", near.SelectedOrigin(6, At(60_000_000_000, 4)));
        near.SetEndOfTrace(new TraceTimestamp(100_000_000_000, TimestampKind.Nanoseconds));
        Assert.Equal("untimed", near.SelectedOrigin(6, At(60_000_000_000, 4)));
    }

    [Fact]
    public void CounterClocksReadSnapshotTimesAsCounts()
    {
        var snaps = new MapsSnapshots();
        MapsSnapshotReader.Read(Encoding.UTF8.GetBytes("==> /proc/3/maps <== @ 100\n==> /proc/3/maps <== @ 300\n"), "m", snaps);
        snaps.OnExec(3, new TracePoint(new TraceTimestamp(200, TimestampKind.Counter), 7));
        Assert.Equal("m:3/3", snaps.SelectedOrigin(3, new TracePoint(new TraceTimestamp(150, TimestampKind.Counter), 1)));
        var only = new MapsSnapshots();
        MapsSnapshotReader.Read(Encoding.UTF8.GetBytes("==> /proc/3/maps <== @ 100\n00400000-00401000 r-xp 00000000 fe:00 1 /a\n==> /proc/3/maps <== @ 300\n00400000-00401000 r-xp 00000000 fe:00 1 /b\n"), "m", only);
        only.OnExec(3, new TracePoint(new TraceTimestamp(200, TimestampKind.Counter), 7));
        Assert.Equal("/a", only.FindVma(3, new TracePoint(new TraceTimestamp(150, TimestampKind.Counter), 1), 0x400000)?.Path);
        Assert.Equal("/b", only.FindVma(3, new TracePoint(new TraceTimestamp(250, TimestampKind.Counter), 9), 0x400000)?.Path);
    }

    [Fact]
    public void TaskHeadersMapThreadsToTheirProcess()
    {
        var snaps = FtraceTestData.LoadSnapshots("path_with_space");
        foreach (int tid in new[] { 12538, 12539, 12540, 12541, 12542 }) Assert.Equal(12537, snaps.ProcessOf(tid));
        Assert.Equal(12537, snaps.ProcessOf(12537));
        Assert.Equal(-1, snaps.ProcessOf(1));
    }

    [Fact]
    public void ADirectoryOfSnapshotFiles()
    {
        var dir = Directory.CreateTempSubdirectory("tu-maps-");
        try
        {
            var text = FtraceTestData.SnapshotsAsMapsOption("dlopen");
            int half = text.IndexOf("==> /proc/12394/maps <== @", text.IndexOf("==> /proc/12394/maps", StringComparison.Ordinal) + 5, StringComparison.Ordinal);
            File.WriteAllText(Path.Combine(dir.FullName, "a.txt"), text[..half]);
            File.WriteAllText(Path.Combine(dir.FullName, "b.txt"), text[half..]);
            var fromDir = MapsSnapshotReader.Load([dir.FullName]);
            var fromText = FtraceTestData.LoadSnapshots("dlopen");
            Assert.Equal(fromText.SnapshotCount, fromDir.SnapshotCount);
            var raw = Fixtures.ReadBytes("ftrace", "dlopen", "raw.txt");
            Assert.Equal(FtraceTestData.Rewrite(raw, new RewriteOptions { Maps = fromText }), FtraceTestData.Rewrite(raw, new RewriteOptions { Maps = fromDir }));
        }
        finally
        {
            dir.Delete(true);
        }
    }
}

public class LiveProcMapsTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("tu-proc-");

    public void Dispose() => _root.Delete(true);

    private sealed class ManualClock : TimeProvider
    {
        public long Now;
        public override long TimestampFrequency => 1000;
        public override long GetTimestamp() => Now;
    }

    private void Proc(int pid, int tgid, string? mapsFixture)
    {
        var d = Directory.CreateDirectory(Path.Combine(_root.FullName, pid.ToString(CultureInfo.InvariantCulture)));
        File.WriteAllText(Path.Combine(d.FullName, "status"), $"Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{tgid}\nNgid:\t0\nPid:\t{pid}\n");
        if (mapsFixture is not null) File.WriteAllBytes(Path.Combine(d.FullName, "maps"), Fixtures.ReadBytes("ftrace", "bash_loop", "maps", mapsFixture));
    }

    [Fact]
    public void ReadsCachesAndRereads()
    {
        Proc(12008, 12008, "00001-12008-12008-pre-exec.maps");
        Proc(12010, 12008, null);
        var clock = new ManualClock();
        var live = new LiveProcMaps(_root.FullName, capacity: 4, missRereadInterval: TimeSpan.FromMilliseconds(50), timeProvider: clock);
        Assert.False(live.IsTimeAware);
        Assert.Equal(12008, live.ProcessOf(12010));
        Assert.Equal(12008, live.ProcessOf(12008));
        Assert.Equal(-1, live.ProcessOf(777));

        // hold's image: 0x55a288cb5954 is in /tmp/tu/bin/hold.
        Assert.Equal("/tmp/tu/bin/hold", live.FindVma(12008, default, 0x55a288cb5954)?.Path);
        Assert.Equal("/tmp/tu/bin/hold", live.FindVma(12008, default, 0x55a288cb5955)?.Path);
        Assert.Equal(1, live.MapsReads);

        // The process execs bash: the trace says so, the next lookup reads the new maps.
        File.WriteAllBytes(Path.Combine(_root.FullName, "12008", "maps"), Fixtures.ReadBytes("ftrace", "bash_loop", "maps", "00030-12008-12008-exit.maps"));
        live.OnExec(12008, default);
        var bash = live.FindVma(12008, default, 0x55a288cb5954);
        Assert.Equal(2, live.MapsReads);
        Assert.NotEqual("/tmp/tu/bin/hold", bash?.Path);

        // A miss re-reads, but not more often than the interval.
        ulong nowhere = 0x10;
        live.FindVma(12008, default, nowhere);
        Assert.Equal(2, live.MapsReads);
        clock.Now += 60;
        live.FindVma(12008, default, nowhere);
        Assert.Equal(3, live.MapsReads);

        // A gone process resolves nothing (the kernel's raw form) and costs no exception.
        Assert.Null(live.FindVma(4242, default, 0x55a288cb5954));

        // Bounded: at most `capacity` processes cached.
        for (int pid = 1; pid < 50; pid++) live.FindVma(pid, default, 1);
        Assert.True(live.CachedProcesses <= 4);
    }
}

/// <summary>
/// <see cref="MapsTimeline"/> (the contract a perf.data front end fills), checked end to end:
/// fed each capture's snapshots as mmap events at their times plus the trace's execs, in
/// another clock 30.42 ms behind (perf's default clock on the capture machine), the rewrite
/// through <see cref="TimelineMapsSource"/> with that offset must give the kernel's lines.
/// </summary>
public class MapsTimelineTests(ITestOutputHelper output)
{
    private const long OffsetNs = 30_420_000;

    [Theory]
    [MemberData(nameof(Captures))]
    public void TimelineFromEventsReproducesTheKernelsLines(string capture)
    {
        var trace = FtraceTestData.Lines(Fixtures.ReadText("ftrace", capture, "raw.txt"));
        var timeline = new MapsTimeline();
        ulong last = 0;
        foreach (var line in trace)
        {
            if (!EventLineParser.TryParse(Encoding.UTF8.GetBytes(line), out var ev)) continue;
            last = ev.Timestamp.Value;
            var m = Regex.Match(line, @"sched_process_exec: .* pid=(\d+) old_pid=");
            if (m.Success) timeline.Exec(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), ev.Timestamp.Value - OffsetNs);
        }
        var snapshotText = FtraceTestData.SnapshotsAsMapsOption(capture);
        foreach (var section in snapshotText.Split("==> ", StringSplitOptions.RemoveEmptyEntries))
        {
            var header = "==> " + section[..section.IndexOf('\n')];
            Assert.True(MapsSnapshotReader.TryParseHeader(Encoding.UTF8.GetBytes(header), out int tgid, out int tid, out var time));
            ulong t = (time?.In(TimestampKind.Nanoseconds) ?? last) - OffsetNs;
            timeline.AddThread(tgid, tid);
            foreach (var map in ProcMapsParser.ParseAll(Encoding.UTF8.GetBytes(section[(section.IndexOf('\n') + 1)..])))
                timeline.Mmap(tgid, t, map);
        }
        var outBytes = FtraceTestData.Rewrite(Fixtures.ReadBytes("ftrace", capture, "raw.txt"),
            new RewriteOptions { Maps = new TimelineMapsSource(timeline, OffsetNs) });
        var outEvents = FtraceTestData.EventsPerCpu(FtraceTestData.Lines(Encoding.UTF8.GetString(outBytes)));
        int agreed = 0, noted = 0, notedAsMaps = 0;
        foreach (var row in FtraceTestData.Pairs(capture))
        {
            string ours = outEvents[row.Cpu][row.EventIndex].Frames[row.Frame].Text;
            if (row.Note.Length == 0)
            {
                Assert.True(row.SymLine == ours, $"cpu{row.Cpu} #{row.EventIndex} frame {row.Frame}: kernel '{row.SymLine}', ours '{ours}'");
                agreed++;
            }
            else
            {
                noted++;
                if (ours == row.MapsLine) notedAsMaps++;
            }
        }
        output.WriteLine($"{capture}: {agreed} unambiguous frames equal the kernel's; {notedAsMaps} of {noted} noted frames equal maps_line");
        Assert.True(agreed > 400);
    }

    public static TheoryData<string> Captures() => new(FtraceTestData.Captures);

    private static Mapping Map(ulong start, ulong end, string path) => new(start, end, 0, path);

    [Fact]
    public void ForkExecAndTime()
    {
        var t = new MapsTimeline();
        t.Mmap(100, 1, Map(0x1000, 0x2000, "/parent"));
        t.Fork(200, 100, 200, 100, 5);
        t.Mmap(100, 6, Map(0x3000, 0x4000, "/parent-later"));
        t.Fork(100, 100, 101, 100, 7);   // a thread
        Assert.Equal(100, t.ProcessOf(101));
        Assert.Equal(200, t.ProcessOf(200));
        Assert.Equal(-1, t.ProcessOf(999));
        // The child starts with the parent's maps at the fork, not what the parent maps later.
        Assert.Equal("/parent", t.FindVma(200, 10, 0x1800)?.Path);
        Assert.Null(t.FindVma(200, 10, 0x3800)?.Path);
        Assert.Equal("/parent-later", t.FindVma(100, 10, 0x3800)?.Path);
        // Before the parent mapped it, a later mapping of the same generation still answers a miss.
        Assert.Equal("/parent-later", t.FindVma(100, 2, 0x3800)?.Path);
        // find_vma at the event's time: an address in a gap gets the next mapping up (wrapped offset).
        Assert.Equal("/parent-later", t.FindVma(100, 10, 0x2800)?.Path);

        // exec: a new, empty address space; mappings after it belong to it.
        t.Exec(200, 20);
        t.Mmap(200, 21, Map(0x5000, 0x6000, "/child-image"));
        t.Mmap(200, 30, Map(0x7000, 0x8000, "/child-lib"));
        Assert.Equal("/parent", t.FindVma(200, 19, 0x1800)?.Path);
        Assert.Equal("/child-image", t.FindVma(200, 22, 0x1800)?.Path);   // find_vma: the next mapping up
        Assert.Equal("/child-lib", t.FindVma(200, 25, 0x7800)?.Path);     // mapped a moment later: the generation's final state
        Assert.Null(t.FindVma(200, 25, 0x9000));

        // Events out of order: an mmap added after lookups were cached is seen.
        t.Mmap(200, 22, Map(0x6000, 0x7000, "/late-arrival"));
        Assert.Equal("/late-arrival", t.FindVma(200, 23, 0x6800)?.Path);
        // An exec added after the mmaps that follow it moves them into the new generation.
        var u = new MapsTimeline();
        u.Mmap(1, 1, Map(0x1000, 0x2000, "/old"));
        u.Mmap(1, 9, Map(0x1000, 0x2000, "/new"));
        u.Exec(1, 5);
        Assert.Equal("/old", u.FindVma(1, 3, 0x1800)?.Path);
        Assert.Equal("/new", u.FindVma(1, 10, 0x1800)?.Path);
    }

    [Fact]
    public void ClockOffsetMapsTraceTimeToTimelineTime()
    {
        var t = new MapsTimeline();
        t.Mmap(1, 1_000, Map(0x1000, 0x2000, "/a"));
        t.Exec(1, 2_000);
        t.Mmap(1, 2_001, Map(0x1000, 0x2000, "/b"));
        var ahead = new TimelineMapsSource(t, clockOffsetNs: 500);   // trace = timeline + 500 ns
        Assert.Equal("/a", ahead.FindVma(1, new TracePoint(new TraceTimestamp(2_400, TimestampKind.Nanoseconds), 0), 0x1800)?.Path);
        Assert.Equal("/b", ahead.FindVma(1, new TracePoint(new TraceTimestamp(2_600, TimestampKind.Nanoseconds), 0), 0x1800)?.Path);
        var behind = new TimelineMapsSource(t, clockOffsetNs: -500);
        Assert.Equal("/b", behind.FindVma(1, new TracePoint(new TraceTimestamp(1_600, TimestampKind.Nanoseconds), 0), 0x1800)?.Path);
        Assert.True(ahead.IsTimeAware);
    }
}
