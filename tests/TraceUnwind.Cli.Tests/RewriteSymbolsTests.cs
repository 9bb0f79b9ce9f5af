using System.Globalization;
using System.Text.RegularExpressions;
using Xunit.Abstractions;
using static TraceUnwind.Cli.Tests.FtracePerfCapture;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// <c>traceunwind rewrite --symbols --symfs DIR</c> on the perfclock capture: the workload's own binaries
/// (committed under <c>fixtures/ftrace-perf/symfs/</c>, the files that ran) name their frames as binutils
/// does. Ground truth: <c>nm -n</c> and <c>readelf -lW</c> of those files (text printed at capture time),
/// with the mapping's file offset from perf's own text of the MMAP2 records.
/// </summary>
public sealed partial class RewriteSymbolsTests(ITestOutputHelper output)
{
    [GeneratedRegex(@"^ => (?<path>.+)\[\+0x(?<off>[0-9a-f]+)\](?: (?<sym>\S+)\+0x(?<symoff>[0-9a-f]+))?$")]
    private static partial Regex SymbolFrame();

    [GeneratedRegex(@"^\s+LOAD\s+0x(?<off>[0-9a-f]+) 0x(?<vaddr>[0-9a-f]+) 0x[0-9a-f]+ 0x(?<filesz>[0-9a-f]+) 0x[0-9a-f]+ (?<flags>.{3})")]
    private static partial Regex LoadLine();

    [GeneratedRegex(@"^(?<addr>[0-9a-f]{16}) [tTwW] (?<name>\S+)$")]
    private static partial Regex NmText();

    private sealed record Load(ulong Offset, ulong Vaddr, ulong FileSize, bool Exec);

    private static List<Load> Loads(string file) =>
        Cli.Lines(CaptureText($"{file}.readelf-l.txt")).Select(l => LoadLine().Match(l)).Where(m => m.Success)
            .Select(m => new Load(ulong.Parse(m.Groups["off"].Value, NumberStyles.HexNumber), ulong.Parse(m.Groups["vaddr"].Value, NumberStyles.HexNumber),
                ulong.Parse(m.Groups["filesz"].Value, NumberStyles.HexNumber), m.Groups["flags"].Value.Contains('E'))).ToList();

    private static List<(ulong Addr, string Name)> TextSymbols(string file) =>
        Cli.Lines(CaptureText($"{file}.nm.txt")).Select(l => NmText().Match(l)).Where(m => m.Success)
            .Select(m => (ulong.Parse(m.Groups["addr"].Value, NumberStyles.HexNumber), m.Groups["name"].Value)).ToList();

    [Fact]
    public void WorkloadFramesAreNamedAsNmNamesThem()
    {
        var r = Cli.Run("rewrite", CapturePath("perfclock", "raw.txt"), "--perf", CapturePath("perfclock", "perf.data"), "--clock-offset", "0",
            "--symbols", "--symfs", CapturePath("symfs"));
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Code);
        var ours = Cli.Lines(r.Stdout);
        var raw = Cli.Lines(CaptureText("perfclock", "raw.txt"));
        var plain = Cli.Lines(Cli.Run("rewrite", CapturePath("perfclock", "raw.txt"), "--perf", CapturePath("perfclock", "perf.data"), "--clock-offset", "0").Stdout);
        var model = PerfModel.Load("perfclock");
        var files = new Dictionary<string, (List<Load> Loads, List<(ulong Addr, string Name)> Syms)>
        {
            ["/tmp/tu-e2e/bin/tuwork"] = (Loads("tuwork"), TextSymbols("tuwork")),
            ["/tmp/tu-e2e/bin/libtuplug.so"] = (Loads("libtuplug.so"), TextSymbols("libtuplug.so")),
        };
        int named = 0, outsideCode = 0;
        foreach (var b in Blocks(raw))
            for (int f = 0; f < b.FrameLines.Count; f++)
            {
                int line = b.FrameLines[f];
                var m = SymbolFrame().Match(ours[line]);
                if (!m.Success) { Assert.Equal(plain[line], ours[line]); continue; }   // raw frames stay raw
                // The frame itself is the --symbols-less rewrite's, a symbol appended.
                Assert.StartsWith(plain[line], ours[line]);
                string path = m.Groups["path"].Value;
                if (!files.TryGetValue(path, out var elf))
                {
                    Assert.False(m.Groups["sym"].Success, $"{ours[line]}: not under --symfs, so no symbol");
                    continue;
                }
                ulong ip = ulong.Parse(RawFrame().Match(raw[line]).Groups["addr"].Value, NumberStyles.HexNumber);
                var map = model.Find(b.Pid, b.TimeNs, ip)!;
                ulong fileOffset = ip - map.Start + map.PgOff;
                var load = elf.Loads.Single(l => fileOffset >= l.Offset && fileOffset < l.Offset + l.FileSize);
                if (!load.Exec)
                {
                    // A stray return address in a read-only segment (see the report): no code there to check.
                    outsideCode++;
                    continue;
                }
                ulong vaddr = fileOffset - load.Offset + load.Vaddr;
                ulong lookup = f == 0 ? vaddr : vaddr - 1;   // callers are return addresses
                var sym = elf.Syms.Last(s => s.Addr <= lookup);
                Assert.Equal($"{sym.Name}+0x{vaddr - sym.Addr:x}", $"{m.Groups["sym"].Value}+0x{m.Groups["symoff"].Value}");
                named++;
            }
        output.WriteLine($"{named} frames in tuwork/libtuplug.so named as nm names them; {outsideCode} outside their code");
    }
}
