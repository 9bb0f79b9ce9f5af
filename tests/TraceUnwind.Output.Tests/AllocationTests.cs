using TraceUnwind.Model;
using Xunit.Abstractions;
using TraceUnwind.Output.Tests.Support;
using TraceUnwind.Testing;

namespace TraceUnwind.Output.Tests;

/// <summary>
/// The hot paths do not allocate per sample: after one warm-up pass over a real capture (names,
/// stacks, strings interned), more passes over the same samples allocate nothing (script, fold)
/// or a small measured amount (CSV: CsvHelper takes strings).
/// </summary>
public class AllocationTests(ITestOutputHelper output)
{
    private const int Passes = 10;

    private static long Measure(FixtureCapture c, ISampleSink sink)
    {
        // Frames are kept in arrays by the test; the Sample views are built on the stack.
        foreach (var s in c.Samples) s.SendTo(sink); // warm-up
        // Each round is Passes passes; the least of three rounds (see Allocations).
        return Allocations.LeastOf(3, () =>
        {
            for (int p = 0; p < Passes; p++)
                foreach (var s in c.Samples) s.SendTo(sink);
        });
    }

    [Theory]
    [InlineData("perf-defer-bash-defer")]
    [InlineData("perf-python_script-fp")]
    public void ScriptWriterDoesNotAllocatePerSample(string capture)
    {
        var c = FixtureSamples.Load(capture);
        var w = new PerfScriptWriter(Stream.Null, c.Symbolizer);
        long bytes = Measure(c, w);
        Assert.True(bytes == 0, $"{bytes} bytes allocated over {Passes * c.Samples.Count} samples");
        w.Complete();
    }

    [Theory]
    [InlineData("perf-defer-bash-defer", false)]
    [InlineData("perf-python_script-fp", true)]
    public void FoldedWriterDoesNotAllocatePerSample(string capture, bool withTid)
    {
        var c = FixtureSamples.Load(capture);
        var w = new FoldedWriter(Stream.Null, c.Symbolizer, new FoldedOptions { IncludeTid = withTid, AnnotateKernel = true });
        long bytes = Measure(c, w);
        Assert.True(bytes == 0, $"{bytes} bytes allocated over {Passes * c.Samples.Count} samples");
        w.Complete();
    }

    [Fact]
    public void ChromiumWriterDoesNotAllocatePerSample()
    {
        var c = FixtureSamples.Load("perf-defer-bash-fp");
        var w = new ChromiumTraceWriter(Stream.Null, c.Symbolizer);
        long bytes = Measure(c, w);
        Assert.True(bytes == 0, $"{bytes} bytes allocated over {Passes * c.Samples.Count} samples");
        w.Complete();
    }

    /// <summary>CSV: CsvHelper needs a string per field; repeated ones are cached, so per sample only
    /// the <c>sample</c> and <c>time</c> strings are new. Bound: 160 bytes per sample.</summary>
    [Fact]
    public void CsvWriterAllocatesLittlePerSample()
    {
        var c = FixtureSamples.Load("perf-defer-bash-defer");
        var w = new CsvSampleWriter(Stream.Null, c.Symbolizer);
        long bytes = Measure(c, w);
        double perSample = (double)bytes / (Passes * c.Samples.Count);
        output.WriteLine($"csv: {perSample:F1} bytes per sample ({c.Samples.Sum(s => Math.Max(1, s.Frames.Length)) / (double)c.Samples.Count:F1} rows per sample)");
        Assert.True(perSample < 160, $"{perSample:F1} bytes per sample");
        w.Complete();
    }
}
