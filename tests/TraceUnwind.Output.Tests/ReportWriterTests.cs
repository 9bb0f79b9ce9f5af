using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Output.Tests.Support;
using TraceUnwind.Testing;

namespace TraceUnwind.Output.Tests;

public partial class ReportWriterTests
{
    internal sealed record ReportRow(double Percent, long Samples, string Comm, string Dso, string Symbol);

    // "    25.40%      225  recur    /capture/bin/recur  [.] recurse" (columns separated by 2+ spaces).
    [GeneratedRegex(@"^\s*(?<pct>\d+\.\d\d)%\s+(?<n>\d+)  (?<comm>.+?)\s{2,}(?<dso>\S.*?)\s{2,}(?<sym>\[[k.]\] .*)$")]
    private static partial Regex OurRow();

    // perf report --stdio (children mode): "    17.27%    17.27%  recur    [kernel.kallsyms]     [k] clear_page"
    [GeneratedRegex(@"^\s+(?<children>\d+\.\d\d)%\s+(?<self>\d+\.\d\d)%\s+(?<comm>\S+)\s+(?<dso>\S+)\s+\[(?<k>[k.])\] (?<sym>.*?)\s*$")]
    private static partial Regex PerfRow();

    internal static (string Text, List<ReportRow> Rows) Report(FixtureCapture c, ReportOptions? options = null)
    {
        var ms = new MemoryStream();
        var w = new ReportWriter(ms, c.Symbolizer, options);
        OwnedSample.SendAll(c.Samples, w);
        string text = Encoding.UTF8.GetString(ms.ToArray());
        var rows = new List<ReportRow>();
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || line.Length == 0) continue;
            var m = OurRow().Match(line);
            Assert.True(m.Success, "unparsed report line: " + line);
            rows.Add(new ReportRow(double.Parse(m.Groups["pct"].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture),
                m.Groups["comm"].Value, m.Groups["dso"].Value, m.Groups["sym"].Value));
        }
        return (text, rows);
    }

    public static TheoryData<string> Captures() => new(FixtureSamples.AllNames());

    /// <summary>Percentages of each event add up to 100 (within rounding) and the sample column to the event's samples.</summary>
    [Theory]
    [MemberData(nameof(Captures))]
    public void PercentagesAddUp(string capture)
    {
        var c = FixtureSamples.Load(capture);
        foreach (var weight in new[] { SampleWeight.Period, SampleWeight.Samples })
        {
            var (text, rows) = Report(c, new ReportOptions { Weight = weight });
            Assert.Contains($"# Total samples: {c.Samples.Count}\n", text);
            // Split rows by event section.
            var sections = text.Split("# Samples: ").Skip(1).ToList();
            var events = c.Samples.GroupBy(s => s.Event).ToDictionary(g => g.Key, g => g.ToList());
            Assert.Equal(events.Count, sections.Count);
            int r = 0;
            foreach (var section in sections)
            {
                var head = Regex.Match(section, @"^(\d+)  of event '([^']*)'\n# Event count \(approx\.\): (\d+)\n");
                Assert.True(head.Success);
                var samples = events[head.Groups[2].Value];
                Assert.Equal(samples.Count, int.Parse(head.Groups[1].Value, CultureInfo.InvariantCulture));
                Assert.Equal(samples.Sum(s => (decimal)s.Period), decimal.Parse(head.Groups[3].Value, CultureInfo.InvariantCulture));
                int n = section.Split('\n').Count(l => l.Length > 0 && !l.StartsWith('#') && !l.StartsWith(head.Groups[1].Value + "  of event", StringComparison.Ordinal));
                var mine = rows.Skip(r).Take(n).ToList();
                r += n;
                Assert.Equal(samples.Count, mine.Sum(x => x.Samples));
                Assert.InRange(mine.Sum(x => x.Percent), 100 - n * 0.005 - 1e-9, 100 + n * 0.005 + 1e-9);
                // Sorted by weight.
                Assert.Equal(mine.OrderByDescending(x => x.Percent).Select(x => x.Percent), mine.Select(x => x.Percent));
            }
            Assert.Equal(rows.Count, r);
        }
    }

    /// <summary>
    /// Against perf 7.2's own <c>perf report --stdio</c> (report.txt) of the same capture: the self overhead
    /// summed per command and per shared object (file name) agrees within the rounding of the rows.
    /// </summary>
    [Theory]
    [InlineData("recur-fp")]
    [InlineData("bash-fp")]
    [InlineData("recur-defer")]
    [InlineData("bash-defer")]
    public void CommAndDsoTotalsMatchPerfReport(string capture)
    {
        var c = FixtureSamples.Load("perf-defer-" + capture);
        var (_, ours) = Report(c);
        var perf = new List<(double Self, string Comm, string Dso)>();
        foreach (var line in Fixtures.ReadText("perf-defer", capture, "report.txt").Split('\n'))
        {
            var m = PerfRow().Match(line);
            if (m.Success)
                perf.Add((double.Parse(m.Groups["self"].Value, CultureInfo.InvariantCulture), m.Groups["comm"].Value, m.Groups["dso"].Value));
        }
        Assert.NotEmpty(perf);
        Compare(perf.GroupBy(p => p.Comm).ToDictionary(g => g.Key, g => (g.Sum(x => x.Self), g.Count())),
            ours.GroupBy(o => o.Comm).ToDictionary(g => g.Key, g => (g.Sum(x => x.Percent), g.Count())));
        // Shared objects: perf report names the dso of the sample ip even when the callchain that perf script
        // printed (our input) is empty or only a cookie; those samples are [unknown] here. So every other dso
        // agrees or is short by part of that [unknown] share, and the shortfalls add up to it exactly.
        var perfDso = perf.GroupBy(p => p.Dso).ToDictionary(g => g.Key, g => (g.Sum(x => x.Self), g.Count()));
        var ourDso = ours.GroupBy(o => Path.GetFileName(o.Dso)).ToDictionary(g => g.Key, g => (g.Sum(x => x.Percent), g.Count()));
        int noStack = c.Samples.Count(s => !s.Frames.Any(f => f.Kind != Model.FrameKind.DeferredCookie));
        double unattributed = 100.0 * noStack / c.Samples.Count;
        if (noStack == 0) Compare(perfDso, ourDso);
        else
        {
            double shortfall = 0;
            int rows = 0;
            foreach (var key in perfDso.Keys.Union(ourDso.Keys).Where(k => k != "[unknown]"))
            {
                var pd = perfDso.GetValueOrDefault(key);
                var od = ourDso.GetValueOrDefault(key);
                rows += pd.Item2 + od.Item2;
                Assert.True(od.Item1 <= pd.Item1 + (pd.Item2 + od.Item2) * 0.005 + 1e-9, $"{key}: perf {pd.Item1:F2}%, ours {od.Item1:F2}%");
                shortfall += pd.Item1 - od.Item1;
            }
            double unknownExcess = ourDso.GetValueOrDefault("[unknown]").Item1 - perfDso.GetValueOrDefault("[unknown]").Item1;
            Assert.True(Math.Abs(shortfall - unknownExcess) <= rows * 0.005 + 0.01, $"shortfall {shortfall:F2}% vs [unknown] excess {unknownExcess:F2}%");
            Assert.True(unknownExcess <= unattributed + 0.01, $"[unknown] excess {unknownExcess:F2}% > {unattributed:F2}% of samples without a stack");
        }

        // The heaviest symbol rows that perf could name are ours too, with the same overhead.
        var perfTop = Fixtures.ReadText("perf-defer", capture, "report.txt").Split('\n')
            .Select(l => PerfRow().Match(l)).Where(m => m.Success && m.Groups["children"].Value == m.Groups["self"].Value
                && !m.Groups["sym"].Value.StartsWith("0x", StringComparison.Ordinal))
            .Select(m => (Pct: double.Parse(m.Groups["self"].Value, CultureInfo.InvariantCulture), Comm: m.Groups["comm"].Value,
                Sym: $"[{m.Groups["k"].Value}] {m.Groups["sym"].Value}")).Take(5).ToList();
        foreach (var t in perfTop)
        {
            var mine = ours.Where(o => o.Comm == t.Comm && o.Symbol == t.Sym).Sum(o => o.Percent);
            // Equal, or short by at most the samples without a stack (perf names their ip).
            Assert.True(mine <= t.Pct + 0.011 && t.Pct - mine <= unattributed + 0.011, $"{t.Comm} {t.Sym}: perf {t.Pct}%, ours {mine}%");
        }
    }

    private static void Compare(Dictionary<string, (double Sum, int Rows)> perf, Dictionary<string, (double Sum, int Rows)> ours)
    {
        foreach (var key in perf.Keys.Union(ours.Keys).Where(k => perf.GetValueOrDefault(k).Sum + ours.GetValueOrDefault(k).Sum > 0))
        {
            var p = perf.GetValueOrDefault(key);
            var o = ours.GetValueOrDefault(key);
            double tolerance = (p.Rows + o.Rows) * 0.005 + 1e-9;
            Assert.True(Math.Abs(p.Sum - o.Sum) <= tolerance, $"{key}: perf {p.Sum:F2}% ({p.Rows} rows), ours {o.Sum:F2}% ({o.Rows} rows)");
        }
    }
}
