using System.Globalization;
using TraceUnwind.Testing;
using Xunit.Abstractions;
using static TraceUnwind.Cli.Tests.FtracePerfCapture;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// <c>traceunwind rewrite raw.txt --maps SNAPSHOTS [--keep-address]</c> on the team's hold captures in
/// <c>fixtures/ftrace/</c>, against the kernel's own sym-userobj (+ sym-addr) rendering of the same events:
/// <c>pairs.tsv.gz</c> pairs every raw frame with the kernel's lines (<c>sym_line</c>, <c>symaddr_line</c>) and with
/// the line recomputed from the snapshot (<c>maps_line</c>); its <c>note</c> names the kernel's read-time artefacts.
/// </summary>
public sealed class RewriteSnapshotsGroundTruthTests(ITestOutputHelper output)
{
    private sealed record Row(string RawLine, string SymLine, string SymAddrLine, string MapsLine, string Note);

    /// <summary>pairs.tsv.gz by (pid, timestamp of the block, frame index): unique in every capture.</summary>
    private static Dictionary<(int Pid, string Ts, int Frame), Row> Pairs(string capture)
    {
        var rows = Fixtures.ReadText("ftrace", capture, "pairs.tsv.gz").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var h = rows[0].Split('\t');
        int C(string n) => Array.IndexOf(h, n);
        var d = new Dictionary<(int, string, int), Row>();
        foreach (var row in rows.Skip(1))
        {
            var f = row.Split('\t');
            d.Add((int.Parse(f[C("pid")], CultureInfo.InvariantCulture), f[C("ts_raw")], int.Parse(f[C("frame")], CultureInfo.InvariantCulture)),
                new Row(f[C("raw_line")], f[C("sym_line")], f[C("symaddr_line")], f[C("maps_line")], f.Length > C("note") ? f[C("note")] : ""));
        }
        return d;
    }

    [Theory]
    [InlineData("path_with_space", false)]
    [InlineData("path_with_space", true)]
    [InlineData("dlopen", false)]
    [InlineData("dlopen", true)]
    [InlineData("forkexec", false)]
    [InlineData("forkexec", true)]
    public void SnapshotsGiveTheKernelsLines(string capture, bool keepAddress)
    {
        var maps = Path.Combine(Path.GetTempPath(), $"tu-e2e-{capture}-{Guid.NewGuid():N}.maps");
        File.WriteAllText(maps, SnapshotsAsMapsOption(["ftrace", capture]));
        try
        {
            string rawPath = Fixtures.Path("ftrace", capture, "raw.txt");
            var r = Cli.Run(keepAddress ? ["rewrite", rawPath, "--maps", maps, "--keep-address"] : ["rewrite", rawPath, "--maps", maps]);
            Assert.Equal("", r.Stderr);
            Assert.Equal(0, r.Code);
            var raw = Cli.Lines(Fixtures.ReadText("ftrace", capture, "raw.txt"));
            var ours = Cli.Lines(r.Stdout);
            Assert.Equal(raw.Count, ours.Count);
            var pairs = Pairs(capture);
            int kernel = 0, better = 0, skipped = 0;
            var blocks = Blocks(raw);
            var frameLines = blocks.SelectMany(b => b.FrameLines).ToHashSet();
            for (int i = 0; i < raw.Count; i++)
                if (!frameLines.Contains(i)) Assert.Equal(raw[i], ours[i]);
            foreach (var b in blocks)
            {
                string ts = EventLine().Match(raw[b.HeaderLine]) is var m ? $"{m.Groups["s"].Value}.{m.Groups["us"].Value}" : "";
                for (int f = 0; f < b.FrameLines.Count; f++)
                {
                    var row = pairs[(b.Pid, ts, f)];
                    string line = ours[b.FrameLines[f]];
                    Assert.Equal(row.RawLine, raw[b.FrameLines[f]]);
                    if (row.Note == "")
                    {
                        Assert.Equal(keepAddress ? row.SymAddrLine : row.SymLine, line);
                        kernel++;
                    }
                    else if (row.Note == "kernel-raw-but-maps-resolves")
                    {
                        // The kernel printed raw (task gone at read time); the snapshot names the frame.
                        Assert.Equal(keepAddress ? $"{row.MapsLine} {row.RawLine[5..]}" : row.MapsLine, line);
                        better++;
                    }
                    else skipped++;   // the kernel's render races between the instances, dlopen's own extra snapshots
                }
            }
            output.WriteLine($"{capture}: {kernel} frames equal to the kernel's, {better} the kernel left raw and the snapshots resolve, {skipped} rows with other notes");
            Assert.Equal(pairs.Count, kernel + better + skipped);
        }
        finally
        {
            File.Delete(maps);
        }
    }
}
