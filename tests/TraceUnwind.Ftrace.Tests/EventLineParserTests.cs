using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Testing;

namespace TraceUnwind.Ftrace.Tests;

/// <summary>
/// Every event line of every real rendering in <c>fixtures/ftrace/</c> and <c>fixtures/trace-cmd/</c>
/// parsed by <see cref="EventLineParser"/> and compared field by field with an independent
/// regular-expression reading of the same line (the capture tool's own regex for the kernel's
/// context layout; one regex per other layout, written from the kernel's format strings).
/// </summary>
public partial class EventLineParserTests
{
    public static TheoryData<string> ContextLayoutFiles()
    {
        var d = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Fixtures.Path("ftrace", "formats"), "*.txt").Order(StringComparer.Ordinal))
        {
            string n = Path.GetFileName(f);
            if (n.StartsWith("00_", StringComparison.Ordinal) || n.StartsWith("08_", StringComparison.Ordinal) || n.StartsWith("09_", StringComparison.Ordinal)
                || n.StartsWith("10_", StringComparison.Ordinal) || n.StartsWith("12_", StringComparison.Ordinal) || n.StartsWith("18_", StringComparison.Ordinal)
                || n.StartsWith("19_", StringComparison.Ordinal) || n.Contains("stats", StringComparison.Ordinal) || n.Contains("stderr", StringComparison.Ordinal)
                || n.Contains("trigger-file", StringComparison.Ordinal)) continue;
            d.Add("ftrace/formats/" + n);
        }
        foreach (var c in FtraceTestData.Captures)
            foreach (var v in new[] { "raw", "sym", "symaddr" })
                d.Add($"ftrace/{c}/{v}.txt");
        d.Add("trace-cmd/kernel_trace_nosym.txt");
        d.Add("trace-cmd/kernel_trace_sym-userobj.txt");
        return d;
    }

    [Theory]
    [MemberData(nameof(ContextLayoutFiles))]
    public void ContextLayoutLinesMatchTheIndependentParse(string file)
    {
        var lines = FtraceTestData.Lines(Fixtures.ReadText(file.Split('/')));
        int events = 0;
        foreach (var line in lines)
        {
            var kind = FtraceLine.Classify(Encoding.UTF8.GetBytes(line));
            if (kind is LineKind.Header or LineKind.Frame or LineKind.Empty or LineKind.BufferStarted) continue;
            if (kind == LineKind.LostEvents)
            {
                Assert.Matches(@"^CPU:\d+ \[LOST \d+ EVENTS\]$", line);
                continue;
            }
            Assert.Equal(LineKind.Text, kind);
            var m = FtraceTestData.HeaderRegex().Match(line);
            Assert.True(m.Success, $"{file}: not an event line: {line}");
            Assert.True(EventLineParser.TryParse(Encoding.UTF8.GetBytes(line), out var ev), $"{file}: did not parse: {line}");
            Assert.Equal(EventLayout.Context, ev.Layout);
            Assert.Equal(m.Groups["comm"].Value, S(ev.Comm));
            Assert.Equal(int.Parse(m.Groups["pid"].Value, CultureInfo.InvariantCulture), ev.Pid);
            string tg = m.Groups["tgid"].Value.Trim();
            Assert.Equal(tg.Length == 0 || tg.Trim('-').Length == 0 ? -1 : int.Parse(tg, CultureInfo.InvariantCulture), ev.Tgid);
            Assert.Equal(int.Parse(m.Groups["cpu"].Value, CultureInfo.InvariantCulture), ev.Cpu);
            Assert.Equal(m.Groups["flags"].Value, S(ev.Flags));
            Assert.True(TraceTimestamp.TryParse(Encoding.ASCII.GetBytes(m.Groups["ts"].Value), out var ts));
            Assert.Equal(ts, ev.Timestamp);
            Assert.Equal(m.Groups["rest"].Value, S(ev.Text));
            Assert.Equal(FtraceTestData.EventName(m.Groups["rest"].Value), S(ev.EventName));
            Assert.Equal(0, ev.Buffer.Length);
            events++;
        }
        Assert.True(events >= 8, $"{file}: {events} event lines");
    }

    [GeneratedRegex(@"^(?<comm>.{8})-(?<pid>\d+) +(?<cpu>\d+)(?<flags>\S{5}) +(?<us>\d+)us(?<mark>.): (?<rest>.*)$")]
    private static partial Regex LatencyRegex();

    [Fact]
    public void LatencyFormatLines()
    {
        int n = 0;
        foreach (var line in EventLinesOf("ftrace", "formats", "09_sym-userobj_latency-format.txt"))
        {
            var m = LatencyRegex().Match(line);
            Assert.True(m.Success, line);
            Assert.True(EventLineParser.TryParse(Encoding.UTF8.GetBytes(line), out var ev), line);
            Assert.Equal(EventLayout.Latency, ev.Layout);
            Assert.Equal(m.Groups["comm"].Value.TrimStart(), S(ev.Comm));
            Assert.Equal(int.Parse(m.Groups["pid"].Value, CultureInfo.InvariantCulture), ev.Pid);
            Assert.Equal(int.Parse(m.Groups["cpu"].Value, CultureInfo.InvariantCulture), ev.Cpu);
            Assert.Equal(m.Groups["flags"].Value, S(ev.Flags));
            Assert.Equal(new TraceTimestamp(ulong.Parse(m.Groups["us"].Value, CultureInfo.InvariantCulture) * 1000, TimestampKind.Nanoseconds), ev.Timestamp);
            Assert.Equal(m.Groups["rest"].Value, S(ev.Text));
            n++;
        }
        Assert.Equal(16, n);
    }

    [GeneratedRegex(@"^ *(?<comm>.*?) +(?<pid>\d+) +(?<cpu>\d+) (?<flags>\d+) (?<preempt>[0-9a-f]{8}) (?<idx>[0-9a-f]{8}) \[(?<abs>[0-9a-f]{8})\] (?<ms>\d+)\.(?<frac>\d{3})ms \(\+\d+\.\d{3}ms\): (?<rest>.*)$")]
    private static partial Regex VerboseRegex();

    [Fact]
    public void LatencyVerboseLines()
    {
        int n = 0;
        foreach (var line in EventLinesOf("ftrace", "formats", "10_sym-userobj_latency-format_verbose.txt"))
        {
            var m = VerboseRegex().Match(line);
            Assert.True(m.Success, line);
            Assert.True(EventLineParser.TryParse(Encoding.UTF8.GetBytes(line), out var ev), line);
            Assert.Equal(EventLayout.LatencyVerbose, ev.Layout);
            Assert.Equal(m.Groups["comm"].Value, S(ev.Comm));
            Assert.Equal(int.Parse(m.Groups["pid"].Value, CultureInfo.InvariantCulture), ev.Pid);
            Assert.Equal(-1, ev.Tgid);
            Assert.Equal(int.Parse(m.Groups["cpu"].Value, CultureInfo.InvariantCulture), ev.Cpu);
            Assert.Equal(m.Groups["flags"].Value, S(ev.Flags));
            ulong ns = ulong.Parse(m.Groups["ms"].Value, CultureInfo.InvariantCulture) * 1_000_000 + ulong.Parse(m.Groups["frac"].Value, CultureInfo.InvariantCulture) * 1000;
            Assert.Equal(new TraceTimestamp(ns, TimestampKind.Nanoseconds), ev.Timestamp);
            Assert.Equal(m.Groups["rest"].Value, S(ev.Text));
            n++;
        }
        Assert.Equal(16, n);
    }

    [Fact]
    public void RawOptionLines()
    {
        int n = 0;
        foreach (var line in EventLinesOf("ftrace", "formats", "12_raw.txt"))
        {
            var m = Regex.Match(line, @"^(?<pid>\d+) (?<cpu>\d+) (?<ts>\d+) (?<rest>type: \d+)$");
            Assert.True(m.Success, line);
            Assert.True(EventLineParser.TryParse(Encoding.UTF8.GetBytes(line), out var ev), line);
            Assert.Equal(EventLayout.Raw, ev.Layout);
            Assert.Equal(int.Parse(m.Groups["pid"].Value, CultureInfo.InvariantCulture), ev.Pid);
            Assert.Equal(int.Parse(m.Groups["cpu"].Value, CultureInfo.InvariantCulture), ev.Cpu);
            Assert.Equal(ulong.Parse(m.Groups["ts"].Value, CultureInfo.InvariantCulture), ev.Timestamp.Value);
            Assert.Equal(m.Groups["rest"].Value, S(ev.Text));
            n++;
        }
        Assert.Equal(16, n);
    }

    [Fact]
    public void NoContextLinesAreNotContextEvents()
    {
        // context-info off: the event text alone ("sys_openat(...)", "<user stack trace>").
        int n = 0;
        foreach (var line in EventLinesOf("ftrace", "formats", "08_sym-userobj_no-context-info.txt"))
        {
            Assert.False(EventLineParser.TryParse(Encoding.UTF8.GetBytes(line), out _), line);
            var ev = EventLineParser.NoContext(Encoding.UTF8.GetBytes(line));
            Assert.Equal(-1, ev.Pid);
            Assert.Equal(line, S(ev.Text));
            n++;
        }
        Assert.Equal(16, n);
    }

    [GeneratedRegex(@"^(?<buf>\S+): +(?<comm>.*?)-(?<pid>\d+) +\[(?<cpu>\d+)\] +(?<ts>\d+\.\d+): (?<rest>.*)$")]
    private static partial Regex TraceCmdRegex();

    [GeneratedRegex(@"^(?<buf>\S+): +(?<comm>.*?)-(?<pid>\d+) +(?<cpu>\d+)(?<flags>\S+) +(?<ts>\d+\.\d+): (?<rest>.*)$")]
    private static partial Regex TraceCmdLatencyRegex();

    [Theory]
    [InlineData("report_default.txt")]
    [InlineData("report_-t.txt")]
    [InlineData("report_-R.txt")]
    [InlineData("report_-l.txt")]
    public void TraceCmdReportLines(string file)
    {
        bool latency = file.Contains("-l", StringComparison.Ordinal);
        int n = 0, userStacks = 0;
        foreach (var line in FtraceTestData.Lines(Fixtures.ReadText("trace-cmd", file)))
        {
            var bytes = Encoding.UTF8.GetBytes(line);
            var kind = FtraceLine.Classify(bytes);
            if (kind == LineKind.TraceCmdCpus) { Assert.Equal("cpus=2", line); continue; }
            if (kind == LineKind.TraceCmdFrame) { Assert.Matches(@"^\t=> 0x[0-9a-f]+$", line); continue; }
            Assert.Equal(LineKind.Text, kind);
            var m = (latency ? TraceCmdLatencyRegex() : TraceCmdRegex()).Match(line);
            Assert.True(m.Success, line);
            Assert.True(EventLineParser.TryParse(bytes, out var ev), line);
            Assert.Equal(latency ? EventLayout.Latency : EventLayout.Context, ev.Layout);
            Assert.Equal(m.Groups["buf"].Value, S(ev.Buffer));
            Assert.Equal(m.Groups["comm"].Value, S(ev.Comm));
            Assert.Equal(int.Parse(m.Groups["pid"].Value, CultureInfo.InvariantCulture), ev.Pid);
            Assert.Equal(int.Parse(m.Groups["cpu"].Value, CultureInfo.InvariantCulture), ev.Cpu);
            if (latency) Assert.Equal(m.Groups["flags"].Value, S(ev.Flags));
            Assert.True(TraceTimestamp.TryParse(Encoding.ASCII.GetBytes(m.Groups["ts"].Value), out var ts));
            Assert.Equal(TimestampKind.Nanoseconds, ts.Kind);
            Assert.Equal(ts, ev.Timestamp);
            Assert.Equal(m.Groups["rest"].Value, S(ev.Text));
            if (S(ev.EventName) == "user_stack") userStacks++;
            n++;
        }
        Assert.Equal(139, userStacks);
        Assert.True(n > userStacks);
    }

    [Theory]
    [InlineData("30_clock_local.txt", 3676400407000UL, TimestampKind.Nanoseconds)]
    [InlineData("30_clock_global.txt", 3676654148000UL, TimestampKind.Nanoseconds)]
    [InlineData("30_clock_boot.txt", 3678383869000UL, TimestampKind.Nanoseconds)]
    [InlineData("30_clock_mono.txt", 3677811660000UL, TimestampKind.Nanoseconds)]
    [InlineData("30_clock_mono_raw.txt", 3677852397000UL, TimestampKind.Nanoseconds)]
    [InlineData("30_clock_perf.txt", 3677522001000UL, TimestampKind.Nanoseconds)]
    [InlineData("30_clock_tai.txt", 1795352093498503000UL, TimestampKind.Nanoseconds)]
    [InlineData("30_clock_counter.txt", 35UL, TimestampKind.Counter)]
    [InlineData("30_clock_uptime.txt", 367698UL, TimestampKind.Counter)]
    [InlineData("30_clock_x86-tsc.txt", 9551189519845UL, TimestampKind.Counter)]
    public void EveryTraceClock(string file, ulong firstValue, TimestampKind kind)
    {
        var first = EventLinesOf("ftrace", "formats", file).First();
        Assert.True(EventLineParser.TryParse(Encoding.UTF8.GetBytes(first), out var ev), first);
        Assert.Equal(new TraceTimestamp(firstValue, kind), ev.Timestamp);
        Assert.Equal("sys_openat", S(ev.EventName));
    }

    [Theory]
    // comm with a space and digits, record-tgid column.
    [InlineData("         mt prog-12537   (  12537) [000] d..2.  3160.431111: <user stack trace>", "mt prog", 12537, 12537, 0, "d..2.", 3160431111000UL, "<user stack trace>")]
    // unknown comm and tgid
    [InlineData("           <...>-12007   (-------) [001] d..2.  3151.145265: sched_switch: x", "<...>", 12007, -1, 1, "d..2.", 3151145265000UL, "sched_switch: x")]
    // comm with '-' and digits before the pid
    [InlineData("     kworker/1:1-41      [001] d..2.  3679.860551: sched_switch: prev", "kworker/1:1", 41, -1, 1, "d..2.", 3679860551000UL, "sched_switch: prev")]
    [InlineData("   systemd-journ-388     [000] .....  1.000001: foo", "systemd-journ", 388, -1, 0, ".....", 1000001000UL, "foo")]
    // uprobe flags
    [InlineData("    probe_helper-17008   [000] DBZff  3675.856543: helper_f3: (0x55e6dcd0f21e)", "probe_helper", 17008, -1, 0, "DBZff", 3675856543000UL, "helper_f3: (0x55e6dcd0f21e)")]
    // older kernels: 5-wide pid, 4 flag columns
    [InlineData("            bash-1234  [003] d..2  1234.567890: sched_switch: a", "bash", 1234, -1, 3, "d..2", 1234567890000UL, "sched_switch: a")]
    // irq-info off
    [InlineData("    probe_helper-17008   [000]   3675.856110: sched_process_exec: filename=/x pid=17008 old_pid=17008", "probe_helper", 17008, -1, 0, "", 3675856110000UL, "sched_process_exec: filename=/x pid=17008 old_pid=17008")]
    // brackets and "-digits" inside the comm: the first '-' with digits is followed by " -77", no
    // context, so the second one is the pid; the comm keeps its trailing space (right-aligned %16s).
    [InlineData("         a[1]-5 -77     [001] .....  10.000001: sched_switch: [120]", "a[1]-5 ", 77, -1, 1, ".....", 10000001000UL, "sched_switch: [120]")]
    public void OddContexts(string line, string comm, int pid, int tgid, int cpu, string flags, ulong ns, string text)
    {
        Assert.True(EventLineParser.TryParse(Encoding.UTF8.GetBytes(line), out var ev), line);
        Assert.Equal(comm, S(ev.Comm));
        Assert.Equal(pid, ev.Pid);
        Assert.Equal(tgid, ev.Tgid);
        Assert.Equal(cpu, ev.Cpu);
        Assert.Equal(flags, S(ev.Flags));
        Assert.Equal(new TraceTimestamp(ns, TimestampKind.Nanoseconds), ev.Timestamp);
        Assert.Equal(text, S(ev.Text));
    }

    [Theory]
    [InlineData("CPU:0 [LOST 1457 EVENTS]", LineKind.LostEvents)]
    [InlineData("##### CPU 0 buffer started ####", LineKind.BufferStarted)]
    [InlineData("# tracer: nop", LineKind.Header)]
    [InlineData("#", LineKind.Header)]
    [InlineData(" => /usr/lib/libc.so.6[+0x1]", LineKind.Frame)]
    [InlineData(" =>  <00007f2bbd351bd3>", LineKind.Frame)]
    [InlineData("\t=> 0x0", LineKind.TraceCmdFrame)]
    [InlineData("cpus=2", LineKind.TraceCmdCpus)]
    [InlineData("", LineKind.Empty)]
    [InlineData("CPU:0 [LOST EVENTS]", LineKind.Text)]
    [InlineData("  bash-1 [000] 1.000000: x", LineKind.Text)]
    public void LineKinds(string line, LineKind kind)
    {
        Assert.Equal(kind, FtraceLine.Classify(Encoding.UTF8.GetBytes(line)));
        if (kind == LineKind.LostEvents)
        {
            Assert.True(FtraceLine.TryParseLostEvents(Encoding.UTF8.GetBytes(line), out int cpu, out ulong lost));
            Assert.Equal(0, cpu);
            Assert.Equal(1457UL, lost);
        }
    }

    [Fact]
    public void LostEventLinesOfTheRealTracePipe()
    {
        var lost = FtraceTestData.Lines(Fixtures.ReadText("ftrace", "formats", "61_lost_events_overwrite1_trace_pipe.txt"))
            .Where(l => FtraceLine.Classify(Encoding.UTF8.GetBytes(l)) == LineKind.LostEvents)
            .Select(l => { FtraceLine.TryParseLostEvents(Encoding.UTF8.GetBytes(l), out int c, out ulong n); return (c, n); })
            .ToList();
        Assert.Equal([(0, 1457UL), (1, 1343UL)], lost);
    }

    private static IEnumerable<string> EventLinesOf(params string[] path) =>
        FtraceTestData.Lines(Fixtures.ReadText(path)).Where(l => l.Length > 0 && l[0] != '#' && !l.StartsWith(" =>", StringComparison.Ordinal));

    private static string S(ReadOnlySpan<byte> s) => Encoding.UTF8.GetString(s);
}
