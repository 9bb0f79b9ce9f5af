using System.Text;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Testing;
using Xunit.Abstractions;

namespace TraceUnwind.Ftrace.Tests;

/// <summary>
/// <c>rewrite</c> of each capture's <c>raw.txt</c> (the kernel's raw user stacks) with the
/// capture's maps snapshots against what the kernel printed for the same events with
/// sym-userobj (<c>sym.txt</c>) and sym-userobj + sym-addr (<c>symaddr.txt</c>), frame by frame,
/// via <c>pairs.tsv.gz</c>.
/// </summary>
public class RewriteGroundTruthTests(ITestOutputHelper output)
{
    public static TheoryData<string, bool> CapturesAndForms()
    {
        var d = new TheoryData<string, bool>();
        foreach (var c in FtraceTestData.Captures) { d.Add(c, false); d.Add(c, true); }
        return d;
    }

    [Theory]
    [MemberData(nameof(CapturesAndForms))]
    public void RewriteOfRawGivesTheKernelsLines(string capture, bool keepAddress)
    {
        var rawBytes = Fixtures.ReadBytes("ftrace", capture, "raw.txt");
        var tally = new ErrorTally();
        var snaps = FtraceTestData.LoadSnapshots(capture, tally);
        Assert.True(tally.IsEmpty);
        var outBytes = FtraceTestData.Rewrite(rawBytes, new RewriteOptions { Maps = snaps, KeepAddress = keepAddress });

        var input = FtraceTestData.Lines(Encoding.UTF8.GetString(rawBytes));
        var outputLines = FtraceTestData.Lines(Encoding.UTF8.GetString(outBytes));
        Assert.Equal(input.Count, outputLines.Count);
        // Every line other than a raw user frame is byte-identical.
        int changed = 0;
        for (int i = 0; i < input.Count; i++)
        {
            if (input[i] == outputLines[i]) continue;
            Assert.StartsWith(" =>  <", input[i]);
            changed++;
        }

        var inEvents = FtraceTestData.EventsPerCpu(input);
        var outEvents = FtraceTestData.EventsPerCpu(outputLines);
        int agreed = 0, noted = 0, notedResolved = 0, notedAsKernel = 0, notedAsMaps = 0;
        var notedOutcomes = new Dictionary<string, int>();
        foreach (var row in FtraceTestData.Pairs(capture))
        {
            var inEv = inEvents[row.Cpu][row.EventIndex];
            var outEv = outEvents[row.Cpu][row.EventIndex];
            Assert.Equal("<user stack trace>", inEv.Event);
            // The pairing lands on the same frame the capture tool paired.
            Assert.Equal(row.RawLine, inEv.Frames[row.Frame].Text);
            string ours = outEv.Frames[row.Frame].Text;
            string kernel = keepAddress ? row.SymAddrLine : row.SymLine;
            if (row.Note.Length == 0)
            {
                Assert.True(kernel == ours, $"{capture} cpu{row.Cpu} #{row.EventIndex} frame {row.Frame} (line {outEv.Frames[row.Frame].Line + 1}): kernel '{kernel}', ours '{ours}'");
                agreed++;
                continue;
            }
            // The kernel's read-time artefacts: count how we do.
            noted++;
            string mapsLine = keepAddress && row.MapsLine.EndsWith(']') ? $"{row.MapsLine} <{row.Addr}>" : row.MapsLine;
            bool resolved = !ours.StartsWith(" =>  <", StringComparison.Ordinal);
            if (resolved) notedResolved++;
            if (ours == kernel) notedAsKernel++;
            if (ours == mapsLine) notedAsMaps++;
            string key = $"{row.Note}: {(ours == mapsLine ? "= maps_line" : ours == kernel ? "= kernel" : "other")}{(resolved ? ", resolved" : ", raw")}";
            notedOutcomes[key] = notedOutcomes.GetValueOrDefault(key) + 1;
        }
        output.WriteLine($"{capture} keepAddress={keepAddress}: {changed} lines rewritten; {agreed} unambiguous frames all equal the kernel's; " +
                         $"{noted} noted frames: {notedResolved} resolved (kernel left them raw or wrong), {notedAsMaps} equal the snapshot-computed maps_line, {notedAsKernel} equal the kernel's line");
        foreach (var (k, v) in notedOutcomes.OrderBy(x => x.Key)) output.WriteLine($"  {v} x {k}");
        Assert.True(agreed > 400, $"only {agreed} frames compared");
    }

    /// <summary>
    /// On a pipe there is no second pass: execs are learnt by scanning what has been read, and
    /// while input keeps arriving the last 256 KiB are held back so each line is rewritten with
    /// that much look-ahead. Read whole or in 64 KiB pieces (a Linux pipe's capacity), the
    /// output equals the two-pass file output.
    /// </summary>
    [Theory]
    [MemberData(nameof(CaptureNames))]
    public void PipeInputGivesTheFileOutput(string capture)
    {
        var rawBytes = Fixtures.ReadBytes("ftrace", capture, "raw.txt");
        var fileOut = FtraceTestData.Rewrite(rawBytes, new RewriteOptions { Maps = FtraceTestData.LoadSnapshots(capture) });
        Assert.Equal(fileOut, RewriteThroughPipe(rawBytes, FtraceTestData.LoadSnapshots(capture), int.MaxValue));
        Assert.Equal(fileOut, RewriteThroughPipe(rawBytes, FtraceTestData.LoadSnapshots(capture), 64 * 1024));
        Assert.Equal(fileOut, RewriteThroughPipe(rawBytes, FtraceTestData.LoadSnapshots(capture), 4096));
    }

    public static TheoryData<string> CaptureNames() => new(FtraceTestData.Captures);

    private static byte[] RewriteThroughPipe(byte[] input, Maps.MapsSnapshots snaps, int chunk)
    {
        using var inStream = new ChunkedStream(input, () => chunk);
        using var outStream = new MemoryStream();
        FtraceRewriter.RunAsync(inStream, outStream, new RewriteOptions { Maps = snaps }, new ErrorTally(), "pipe").GetAwaiter().GetResult();
        return outStream.ToArray();
    }
}
