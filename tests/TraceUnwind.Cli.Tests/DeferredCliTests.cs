using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Testing;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// End to end on the real <c>perf-defer/recur-defer</c> capture (Linux 7.2.13, <c>--call-graph fp,defer</c>):
/// <c>script</c>, <c>fold</c>, <c>--no-merge</c>, <c>--max-pending</c> and <c>inject</c> run in-process through
/// <see cref="Program.Run"/>, against perf 7.2.13's own <c>perf script</c> output of the same file.
/// </summary>
public sealed class DeferredCliTests
{
    private static readonly string Capture = Fixtures.Path("perf-defer", "recur-defer", "perf.data");

    private static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var r = Cli.Run(args);
        return (r.Code, r.Stdout, r.Stderr);
    }

    private sealed record ScriptSample(int Tid, ulong Micros, string Header, List<(ulong Address, string Dso)> Frames);

    // "recur     360/360       134.860713137:    1001001 cpu-clock:" (ours) / "recur     360/360       134.860713: cpu-clock: " (perf)
    private static readonly Regex Header = new(@"^.*?\s(?<pid>-?\d+)/(?<tid>-?\d+)\s+(?<s>\d+)\.(?<frac>\d{6})\d*:", RegexOptions.Compiled);
    private static readonly Regex Frame = new(@"^\t\s*(?<addr>[0-9a-f]+) .* \((?<dso>[^()]*)\)$", RegexOptions.Compiled);

    private static List<ScriptSample> ParseScript(string text)
    {
        var list = new List<ScriptSample>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0) continue;
            if (line[0] == '\t')
            {
                var f = Frame.Match(line);
                Assert.True(f.Success, line);
                list[^1].Frames.Add((ulong.Parse(f.Groups["addr"].Value, NumberStyles.HexNumber), f.Groups["dso"].Value));
                continue;
            }
            var h = Header.Match(line);
            Assert.True(h.Success, line);
            list.Add(new ScriptSample(int.Parse(h.Groups["tid"].Value), ulong.Parse(h.Groups["s"].Value) * 1_000_000 + ulong.Parse(h.Groups["frac"].Value), line, new()));
        }
        return list;
    }

    [Fact]
    public void ScriptShowsPerf72sMergedStacks()
    {
        var (code, stdout, stderr) = Run("script", Capture);
        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.DoesNotContain("(cookie)", stdout);
        Assert.DoesNotContain("[deferred user stack lost]", stdout);
        var ours = ParseScript(stdout).ToDictionary(s => (s.Tid, s.Micros));
        var perf = ParseScript(Fixtures.ReadText("perf-defer", "recur-defer", "script-F.txt.gz"));
        Assert.Equal(perf.Count, ours.Count);
        // Each sample's cookie: the last frame of its no-merge view.
        var cookies = ParseScript(Fixtures.ReadText("perf-defer", "recur-defer", "script-F-nomerge.txt.gz"))
            .Where(s => !s.Header.Contains("DEFERRED", StringComparison.Ordinal)).ToDictionary(s => (s.Tid, s.Micros), s => s.Frames[^1].Address);
        int same = 0, better = 0, dropped = 0;
        foreach (var p in perf)
        {
            var o = ours[(p.Tid, p.Micros)];
            if (p.Frames.Count == 0) { dropped++; continue; } // perf drops a chain with a junk word; we drop the word
            if (p.Frames[^1].Address == cookies[(p.Tid, p.Micros)])
            {
                // perf 7.2 printed the cookie as a user frame; we joined the record that came before the sample.
                Assert.Equal(p.Frames.Take(p.Frames.Count - 1).Select(f => f.Address), o.Frames.Take(p.Frames.Count - 1).Select(f => f.Address));
                Assert.StartsWith("/", o.Frames[^1].Dso);
                better++;
                continue;
            }
            Assert.Equal(p.Frames.Select(f => f.Address), o.Frames.Select(f => f.Address));
            // Our user frames name path[+0xOFF]; perf's the path.
            for (int k = 0; k < p.Frames.Count; k++)
                Assert.True(o.Frames[k].Dso == p.Frames[k].Dso || o.Frames[k].Dso.StartsWith(p.Frames[k].Dso + "[+0x", StringComparison.Ordinal), $"{p.Header}: {o.Frames[k].Dso} vs {p.Frames[k].Dso}");
            same++;
        }
        Assert.Equal((2, perf.Count - 2 - dropped), (better, same));
    }

    [Fact]
    public void NoMergeIsPerfsNoMergeCallchains()
    {
        var (code, stdout, _) = Run("script", "--no-merge", Capture);
        Assert.Equal(0, code);
        var ours = ParseScript(stdout);
        var perf = ParseScript(Fixtures.ReadText("perf-defer", "recur-defer", "script-F-nomerge.txt.gz"));
        Assert.Equal(perf.Count, ours.Count);
        Assert.Equal(746, ours.Count(s => s.Header.Contains("DEFERRED CALLCHAIN [cookie: ", StringComparison.Ordinal)));
        Assert.Equal(864, Regex.Matches(stdout, @" \(cookie\) \(\[unknown\]\)").Count);
        for (int i = 0; i < perf.Count; i++)
        {
            Assert.Equal((perf[i].Tid, perf[i].Micros), (ours[i].Tid, ours[i].Micros));
            if (perf[i].Frames.Count > 0) Assert.Equal(perf[i].Frames.Select(f => f.Address), ours[i].Frames.Select(f => f.Address));
        }
    }

    private static List<(string Stack, long Count)> Folded(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => (l[..l.LastIndexOf(' ')], long.Parse(l[(l.LastIndexOf(' ') + 1)..]))).ToList();

    [Fact]
    public void FoldHasUserStacksByDefaultAndNotWithNoMerge()
    {
        var joined = Folded(Run("fold", Capture).Stdout);
        var noMerge = Folded(Run("fold", "--no-merge", Capture).Stdout);
        Assert.Equal(864, joined.Sum(l => l.Count));
        Assert.Equal(864, noMerge.Sum(l => l.Count));
        // Joined: every stack has its user frames (path[+0xOFF]); no cookie, nothing lost.
        Assert.All(joined, l => Assert.Contains("[+0x", l.Stack));
        Assert.DoesNotContain(joined, l => l.Stack.Contains("lost", StringComparison.Ordinal));
        // --no-merge: the cookie is not a frame for fold, so only kernel frames (or nothing) remain.
        Assert.DoesNotContain(noMerge, l => l.Stack.Contains("[+0x", StringComparison.Ordinal));
        Assert.Equal(1923, joined.Where(l => l.Stack.Contains("/capture/bin/recur[+0x", StringComparison.Ordinal))
            .Sum(l => l.Count * Regex.Matches(l.Stack, @"/capture/bin/recur\[\+0x").Count)); // perf 7.2: 1923 frames in /capture/bin/recur
    }

    [Fact]
    public void MaxPendingCapsWhatWaitsAndCountsIt()
    {
        var (code, stdout, stderr) = Run("fold", "--max-pending", "1", Capture);
        Assert.Equal(0, code);
        var lines = Folded(stdout);
        Assert.Equal(864, lines.Sum(l => l.Count));
        long lost = lines.Where(l => l.Stack.Contains("[deferred user stack lost]", StringComparison.Ordinal)).Sum(l => l.Count);
        Assert.Contains($"traceunwind: {lost} x perf.deferred.lost-overflow (note)", stderr);
        Assert.Contains("raise --max-pending", stderr);
        Assert.InRange(lost, 1, 863);

        var (bad, _, badErr) = Run("fold", "--max-pending", "0", Capture);
        Assert.Equal(2, bad);
        Assert.Contains("--max-pending must be at least 1", badErr);
    }

    [Fact]
    public void InjectWritesAnOrdinaryCaptureWithTheSameStacks()
    {
        string dir = Directory.CreateTempSubdirectory("tu-cli-inject-").FullName;
        try
        {
            string output = Path.Combine(dir, "injected.data");
            var (code, stdout, stderr) = Run("inject", Capture, "-o", output);
            Assert.Equal(0, code);
            Assert.Equal("", stdout);
            Assert.Contains("864 samples with a deferred user callchain: 862 joined, 2 joined with an earlier record of their cookie, 0 lost", stderr);
            Assert.Contains("746 deferred records left out", stderr);
            Assert.Equal(["injected.data"], Directory.GetFiles(dir).Select(Path.GetFileName));

            // The injected file has ordinary callchains: --no-merge changes nothing, and the stacks are the joined ones.
            var fromOriginal = ParseScript(Run("script", Capture).Stdout).ToDictionary(s => (s.Tid, s.Micros));
            var fromInjected = ParseScript(Run("script", "--no-merge", output).Stdout);
            Assert.Equal(fromOriginal.Count, fromInjected.Count);
            foreach (var s in fromInjected)
                Assert.Equal(fromOriginal[(s.Tid, s.Micros)].Frames, s.Frames);
            // In time order.
            Assert.Equal(fromInjected.Select(s => s.Micros).Order(), fromInjected.Select(s => s.Micros));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void InjectRefusesStdoutAndNonPerfInput()
    {
        var (code, _, stderr) = Run("inject", Capture, "-o", "-");
        Assert.Equal(2, code);
        Assert.Contains("give -o FILE", stderr);

        string dir = Directory.CreateTempSubdirectory("tu-cli-inject-").FullName;
        try
        {
            var (textCode, _, textErr) = Run("inject", Fixtures.Path("ftrace", "bash_loop", "raw.txt"), "-o", Path.Combine(dir, "out.data"));
            Assert.Equal(1, textCode);
            Assert.Contains("is not a perf.data file", textErr);
            Assert.Empty(Directory.GetFiles(dir));

            var (missing, _, _) = Run("inject", Capture);
            Assert.Equal(2, missing); // -o is required
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
