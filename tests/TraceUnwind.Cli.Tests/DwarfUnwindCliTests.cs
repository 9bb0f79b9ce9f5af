using System.Globalization;
using System.Text;
using TraceUnwind.Testing;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// Issue 5 end to end: <c>--call-graph dwarf</c> samples of the SFrame-only capture
/// (<c>fixtures/unwind-sid</c>, no frame pointers) go through the real perf front end and the
/// shared unwinder (<c>traceunwind csv --unwind sframe --symfs ...</c>), and the user frames equal
/// perf 6.1's .eh_frame-based chains (<c>perf-script.txt.gz</c>) up to and including the first
/// frame outside <c>/tu/recur</c> (sid's libc has no .sframe). perf prints callers file-relative at
/// return address - 1; we print the return address itself, so callers differ by exactly one.
/// </summary>
public sealed class DwarfUnwindCliTests
{
    private static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var r = Cli.Run(args);
        return (r.Code, r.Stdout, r.Stderr);
    }

    private sealed record PerfSample(string Time, List<(ulong Addr, string Dso)> User);

    private static List<PerfSample> ParsePerf(string text)
    {
        var list = new List<PerfSample>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0) continue;
            if (line[0] != '\t')
            {
                // "recur 26043  1557.470588:    8333333 cpu-clock:ppp: "
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                list.Add(new PerfSample(parts[2].TrimEnd(':'), new()));
                continue;
            }
            var t = line.Trim();
            string dso = t[(t.LastIndexOf('(') + 1)..^1];
            if (dso is "inlined" or "[kernel.kallsyms]") continue;
            list[^1].User.Add((ulong.Parse(t[..t.IndexOf(' ')], NumberStyles.HexNumber), dso));
        }
        return list;
    }

    [Theory]
    [InlineData("sframe")]
    [InlineData("auto")]
    public void SFrameUnwindingThroughThePerfFrontEndEqualsPerf(string mode)
    {
        var (code, csv, stderr) = Run("csv", "--unwind", mode, "--symfs", Fixtures.Path("unwind-sid", "symfs"),
            Fixtures.Path("unwind-sid", "perf.data"));
        Assert.True(code == 0, stderr);
        var perf = ParsePerf(Fixtures.ReadText("unwind-sid", "perf-script.txt.gz"));

        var lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var header = lines[0].Split(',');
        int cSample = Array.IndexOf(header, "sample"), cTime = Array.IndexOf(header, "time"), cKind = Array.IndexOf(header, "kind"),
            cPath = Array.IndexOf(header, "path"), cFileOff = Array.IndexOf(header, "file_offset"), cFrame = Array.IndexOf(header, "frame");
        var ours = lines.Skip(1).Select(l => l.Split(','))
            .GroupBy(f => f[cSample])
            .Select(g => (Time: g.First()[cTime], User: g.Where(f => f[cKind] == "user").OrderBy(f => int.Parse(f[cFrame]))
                .Select(f => (Path: f[cPath], FileOffset: f[cFileOff].Length == 0 ? 0 : Convert.ToUInt64(f[cFileOff], 16))).ToList()))
            .ToList();

        Assert.Equal(perf.Count, ours.Count);
        int compared = 0;
        for (int i = 0; i < perf.Count; i++)
        {
            var p = perf[i];
            var o = ours[i];
            Assert.StartsWith(p.Time, o.Time); // perf prints µs, we print ns
            // perf's frames up to and including the first outside /tu/recur.
            int k = p.User.FindIndex(f => f.Dso != "/tu/recur");
            int n = k < 0 ? p.User.Count : k + 1;
            Assert.True(o.User.Count >= n, $"sample {i} at {p.Time}: {o.User.Count} user frames, perf has {n} to compare");
            for (int j = 0; j < n; j++)
            {
                Assert.Equal(p.User[j].Dso, o.User[j].Path);
                if (p.User[j].Dso != "/tu/recur") continue; // libc: perf names it from the host's debug info
                ulong expected = j == 0 ? p.User[j].Addr : p.User[j].Addr + 1;
                Assert.Equal(expected, o.User[j].FileOffset);
                compared++;
            }
        }
        Assert.True(compared > 69 * 10, $"only {compared} frames compared");
    }
}
