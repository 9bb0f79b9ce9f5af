using System.Globalization;
using System.Text.RegularExpressions;
using Xunit.Abstractions;
using static TraceUnwind.Cli.Tests.FtracePerfCapture;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// <c>script</c>, <c>csv</c> and <c>fold</c> of ftrace text (the perfclock capture's raw.txt with its hold
/// snapshots as <c>--maps</c>): one sample per event with a user stack, its frames named as the rewrite names the
/// same lines; the folded stacks equal those computed from the kernel's own sym.txt.
/// </summary>
public sealed partial class FtraceSamplesCliTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly string _maps = Path.Combine(Path.GetTempPath(), $"tu-e2e-samples-{Guid.NewGuid():N}.maps");
    private readonly List<string> _raw = Cli.Lines(CaptureText("perfclock", "raw.txt"));
    private readonly List<UserBlock> _blocks;
    private readonly List<string> _rewritten;

    public FtraceSamplesCliTests(ITestOutputHelper output)
    {
        _output = output;
        File.WriteAllText(_maps, SnapshotsAsMapsOption("perfclock"));
        _blocks = Blocks(_raw);
        var r = Cli.Run("rewrite", CapturePath("perfclock", "raw.txt"), "--maps", _maps);
        Assert.Equal(0, r.Code);
        _rewritten = Cli.Lines(r.Stdout);
    }

    public void Dispose() => File.Delete(_maps);

    /// <summary>How the sample writers name a user frame the rewrite wrote as <paramref name="rewrittenLine"/>: <c>path[+0xOFF]</c>, or null (raw).</summary>
    private static string? UserObjOf(string rewrittenLine) =>
        UserObjFrame().Match(rewrittenLine) is { Success: true } m ? $"{m.Groups["path"].Value}[+0x{m.Groups["off"].Value}]" : null;

    private ulong Address(int line) => ulong.Parse(RawFrame().Match(_raw[line]).Groups["addr"].Value, NumberStyles.HexNumber);

    private string Comm(UserBlock b) => EventLine().Match(_raw[b.HeaderLine]).Groups["comm"].Value.Trim();

    [GeneratedRegex(@"^(?<comm>\S.*?)\s+(?<pid>\d+)/(?<tid>\d+)\s+\[(?<cpu>\d+)\]\s+(?<s>\d+)\.(?<ns>\d{9}):\s+(?<period>\d+) (?<event>\S+):$")]
    private static partial Regex ScriptHeader();

    [GeneratedRegex(@"^\t\s*(?<addr>[0-9a-f]+) (?<sym>\S+) \((?<where>.*)\)$")]
    private static partial Regex ScriptFrame();

    [Fact]
    public void ScriptHasOneSamplePerUserStackWithTheRewritesFrames()
    {
        var r = Cli.Run("script", CapturePath("perfclock", "raw.txt"), "--maps", _maps);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Code);
        var samples = new List<(Match Header, List<Match> Frames)>();
        foreach (var line in Cli.Lines(r.Stdout))
        {
            if (line.Length == 0) continue;
            if (line[0] == '\t')
            {
                var f = ScriptFrame().Match(line);
                Assert.True(f.Success, line);
                samples[^1].Frames.Add(f);
                continue;
            }
            var h = ScriptHeader().Match(line);
            Assert.True(h.Success, line);
            samples.Add((h, new()));
        }
        Assert.Equal(_blocks.Count, samples.Count);
        foreach (var (b, (h, frames)) in _blocks.Zip(samples))
        {
            var ev = EventLine().Match(_raw[b.HeaderLine]);
            Assert.Equal(b.Pid.ToString(CultureInfo.InvariantCulture), h.Groups["tid"].Value);
            Assert.Equal(Comm(b), h.Groups["comm"].Value);
            Assert.Equal(ev.Groups["cpu"].Value.TrimStart('0').PadLeft(1, '0'), h.Groups["cpu"].Value.TrimStart('0').PadLeft(1, '0'));
            // The event the stack belongs to (the line before the block), its time in ns.
            Assert.Equal(EventLine().Match(_raw[b.HeaderLine - 1]).Groups["rest"].Value.Split(':', '(')[0], h.Groups["event"].Value.TrimEnd(':'));
            Assert.Equal(TimeNs(EventLine().Match(_raw[b.HeaderLine - 1])),
                long.Parse(h.Groups["s"].Value, CultureInfo.InvariantCulture) * 1_000_000_000L + long.Parse(h.Groups["ns"].Value, CultureInfo.InvariantCulture));
            Assert.Equal(b.FrameLines.Count, frames.Count);
            foreach (var (line, f) in b.FrameLines.Zip(frames))
            {
                Assert.Equal(Address(line), ulong.Parse(f.Groups["addr"].Value, NumberStyles.HexNumber));
                Assert.Equal(UserObjOf(_rewritten[line]) ?? "[unknown]", f.Groups["where"].Value);
            }
        }
    }

    [Fact]
    public void CsvRowsAreTheRewritesFrames()
    {
        var r = Cli.Run("csv", CapturePath("perfclock", "raw.txt"), "--maps", _maps);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Code);
        var rows = Cli.Lines(r.Stdout);
        var header = rows[0].Split(',');
        int C(string n) => Array.IndexOf(header, n);
        var expected = _blocks.SelectMany((b, i) => b.FrameLines.Select((line, f) => (Sample: i, Frame: f, Line: line, Block: b))).ToList();
        Assert.Equal(expected.Count, rows.Count - 1);
        foreach (var (e, row) in expected.Zip(rows.Skip(1)))
        {
            var c = row.Split(',');   // no field here holds a comma (paths, comms, events of this capture)
            Assert.Equal(e.Sample.ToString(CultureInfo.InvariantCulture), c[C("sample")]);
            Assert.Equal(e.Frame.ToString(CultureInfo.InvariantCulture), c[C("frame")]);
            Assert.Equal(e.Block.Pid.ToString(CultureInfo.InvariantCulture), c[C("tid")]);
            Assert.Equal("user", c[C("kind")]);
            Assert.Equal($"0x{Address(e.Line):x}", c[C("address")]);
            var m = UserObjFrame().Match(_rewritten[e.Line]);
            Assert.Equal(m.Success ? m.Groups["path"].Value : "", c[C("path")]);
            Assert.Equal(m.Success ? "0x" + m.Groups["off"].Value : "", c[C("offset")]);
        }
    }

    [Fact]
    public void FoldEqualsTheStacksOfTheKernelsOwnRendering()
    {
        var r = Cli.Run("fold", CapturePath("perfclock", "raw.txt"), "--maps", _maps);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Code);

        // Independently: the kernel's sym.txt frames (comm from the raw instance's block, as the input names it),
        // outermost first, identical stacks summed. Where the kernel printed raw (the task had lost its mm when
        // the line was read: sched_process_exit), the expected frame is what perf's records say.
        var sym = Cli.Lines(CaptureText("perfclock", "sym.txt"));
        var model = PerfModel.Load("perfclock");
        var expected = new Dictionary<string, int>(StringComparer.Ordinal);
        int fromPerf = 0;
        foreach (var (a, k) in Pair(_blocks, Blocks(sym)))
        {
            var frames = new List<string>();
            foreach (var (rl, kl) in a.FrameLines.Zip(k.FrameLines))
            {
                string kernel = sym[kl];
                if (!UserObjFrame().IsMatch(kernel))
                {
                    kernel = model.ExpectedLine(a.Pid, a.TimeNs, Address(rl));
                    if (UserObjFrame().IsMatch(kernel)) fromPerf++;
                }
                frames.Add(UserObjOf(kernel) ?? $"0x{Address(rl):x16}");
            }
            frames.Reverse();
            string stack = string.Join(';', [Comm(a), .. frames]);
            expected[stack] = expected.GetValueOrDefault(stack) + 1;
        }
        Assert.Equal(_blocks.Count, expected.Values.Sum());
        var ours = Cli.Lines(r.Stdout).ToDictionary(l => l[..l.LastIndexOf(' ')], l => int.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), ours.OrderBy(p => p.Key, StringComparer.Ordinal));
        _output.WriteLine($"{expected.Count} stacks, {_blocks.Count} samples; {fromPerf} frames the kernel printed raw, named from perf's records");
    }
}
