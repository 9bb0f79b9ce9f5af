using System.Text.RegularExpressions;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// Header, attrs and feature sections against <c>perf report --header-only</c> (<c>*.header.txt</c>) and
/// build ids against <c>perf buildid-list</c>, for captures of perf 6.1 and perf 7.2.
/// </summary>
public sealed class HeaderTests
{
    private static Dictionary<string, string> Fields(string text)
    {
        var d = new Dictionary<string, string>();
        foreach (var line in text.Split('\n'))
        {
            var m = Regex.Match(line, @"^# ([a-z][a-z ]*?)\s*: (.*)$");
            if (m.Success && !d.ContainsKey(m.Groups[1].Value)) d[m.Groups[1].Value] = m.Groups[2].Value.TrimEnd();
        }
        return d;
    }

    public static TheoryData<string, string> Captures() => new()
    {
        { "perf/bash_loop/fp.data", "perf/bash_loop/fp.header.txt" },
        { "perf/bash_loop/tp.data", "perf/bash_loop/tp.header.txt" },
        { "perf/python_script/dwarf.data", "perf/python_script/dwarf.header.txt" },
        { "perf-defer/recur-defer/perf.data", "perf-defer/recur-defer/header.txt" },
        { "perf-defer/bash-fp/perf.data", "perf-defer/bash-fp/header.txt" },
    };

    [Theory]
    [MemberData(nameof(Captures))]
    public void FeaturesMatchPerfHeaderOnly(string data, string header)
    {
        string text = Fixtures.ReadText(header.Split('/'));
        var f = Fields(text);
        var (_, tally, s) = Run.File(Fixtures.Path(data.Split('/')));
        Assert.Equal(0, tally.ErrorCount);
        Assert.False(s.IsPipeMode);
        Assert.Equal(long.Parse(f["data offset"]), s.DataOffset);
        Assert.Equal(long.Parse(f["data size"]), s.DataSize);
        Assert.Equal(f["hostname"], s.Hostname);
        Assert.Equal(f["os release"], s.OsRelease);
        Assert.Equal(f["perf version"], s.PerfVersion);
        Assert.Equal(f["arch"], s.Arch);
        Assert.Equal(UnwindArch.X86_64, s.UnwindArch);
        Assert.Equal(int.Parse(f["nrcpus online"]), s.NrCpusOnline);
        Assert.Equal(int.Parse(f["nrcpus avail"]), s.NrCpusAvailable);
        Assert.Equal(f["cpudesc"], s.CpuDesc);
        Assert.Equal(f["cpuid"], s.CpuId);
        Assert.Equal(f["cmdline"], string.Join(' ', s.Cmdline));
        if (f.TryGetValue("time of first sample", out var first))
        {
            Assert.Equal(first, $"{s.FirstSampleTime / 1_000_000_000}.{s.FirstSampleTime / 1000 % 1_000_000:D6}");
            Assert.Equal(f["time of last sample"], $"{s.LastSampleTime / 1_000_000_000}.{s.LastSampleTime / 1000 % 1_000_000:D6}");
        }
        // "# event : name = cpu-clock, , id = { 2807, 2808 }, type = 1, size = 128, ..."
        var events = Regex.Matches(text, @"^# event : name = (?<name>[^,]+), , id = \{ (?<ids>[\d, ]+) \}, type = (?<type>\d+).*?, size = (?<size>\d+)", RegexOptions.Multiline);
        Assert.Equal(events.Count, s.Events.Count);
        for (int i = 0; i < events.Count; i++)
        {
            var e = events[i];
            Assert.Equal(e.Groups["name"].Value, s.Events[i].Name);
            Assert.True(s.Events[i].HasRecordedName);
            Assert.Equal(e.Groups["ids"].Value.Split(", ").Select(ulong.Parse), s.Events[i].Ids);
            Assert.Equal(uint.Parse(e.Groups["type"].Value), s.Events[i].Attr.Type);
            Assert.Equal(uint.Parse(e.Groups["size"].Value), s.Events[i].Attr.Size);
        }
        foreach (var e in s.Events)
        {
            Assert.Equal(text.Contains("sample_id_all = 1"), e.Attr.SampleIdAll);
            Assert.Equal(text.Contains("defer_callchain = 1"), e.Attr.DeferCallchain);
        }
    }

    [Fact]
    public void BuildIdsFromTheFeatureSection()
    {
        // perf 6.1 wrote a BUILD_ID feature (hit DSOs only: perf record -N keeps the feature).
        var (_, _, s) = Run.File(Fixtures.Path("perf", "bash_loop", "fp.data"));
        Assert.NotEmpty(s.BuildIds);
        Assert.All(s.BuildIds, b => Assert.Equal(20, b.BuildId.Length));
        Assert.Contains(s.BuildIds, b => b.FileName == "/usr/lib/x86_64-linux-gnu/libc.so.6");
        Assert.Contains(s.BuildIds, b => b.FileName == "[kernel.kallsyms]" && b.Pid == -1);
    }

    [Theory]
    [InlineData("recur-defer")]
    [InlineData("bash-fp")]
    public void BuildIdsFromMmap2RecordsMatchBuildIdList(string capture)
    {
        // perf 7.2 recorded build ids in MMAP2 (misc bit 14) instead of a BUILD_ID feature.
        var (samples, _, s) = Run.File(Fixtures.Path("perf-defer", capture, "perf.data"));
        Assert.Empty(s.BuildIds);
        var expected = Fixtures.ReadText("perf-defer", capture, "buildid-list.txt").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p[1]);
        var printer = new SidebandTests.SidebandPrinter();
        using var fs = File.OpenRead(Fixtures.Path("perf-defer", capture, "perf.data"));
        new PerfRecordReader(fs, capture).Run(printer);
        var seen = printer.Lines.Select(l => Regex.Match(l.Text, @"<([0-9a-f]+)>\]: \S+ (.*)$")).Where(m => m.Success)
            .Select(m => (Id: m.Groups[1].Value, Path: m.Groups[2].Value)).Distinct().ToList();
        // buildid-list shows the DSOs with samples (all of them in recur; bash-fp also mapped programs
        // that got none) and names the kernel /proc/kcore where the MMAP2 says [kernel.kallsyms]_text.
        Assert.Subset(seen.Select(x => x.Id).ToHashSet(), expected.Keys.ToHashSet());
        if (capture == "recur-defer") Assert.Equal(expected.Keys.Order(), seen.Select(x => x.Id).Distinct().Order());
        foreach (var (id, path) in seen.Where(x => !x.Path.StartsWith('[') && expected.ContainsKey(x.Id)))
            Assert.Equal(expected[id], path);
        // The mappings frames point at carry them too: exactly the ones of DSOs with samples.
        var mapped = samples.SelectMany(x => x.Frames).Select(f => f.Mapping).Where(m => m?.BuildId is not null)
            .Select(m => Convert.ToHexStringLower(m!.BuildId!)).ToHashSet();
        Assert.Subset(expected.Keys.ToHashSet(), mapped);
    }

    [Fact]
    public void TimeConvRecord()
    {
        // From perf script -D: Time Shift 31, Time Multiplier 827203690, Time Zero 18446744073552710363, Cap Time Zero 1.
        var (_, _, s) = Run.File(Fixtures.Path("perf-defer", "recur-defer", "perf.data"));
        var t = Assert.NotNull(s.TimeConv);
        Assert.Equal((31UL, 827203690UL, 18446744073552710363UL, true, false), (t.TimeShift, t.TimeMult, t.TimeZero, t.CapUserTimeZero, t.CapUserTimeShort));
    }
}
