using System.Buffers;
using TraceUnwind.Ftrace.Pipeline;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Model;
using TraceUnwind.Testing;

namespace TraceUnwind.Ftrace.Tests;

/// <summary>
/// The hot paths allocate nothing per line: the rewrite (parse, find_vma, path[+0xOFF]) and the
/// sample source (parse, group, intern, one Sample view per event) over a real capture, measured
/// with GC.GetAllocatedBytesForCurrentThread on a second pass once buffers and caches are warm.
/// </summary>
public class AllocationTests
{
    private sealed class NullSink : ISampleSink
    {
        public long Frames;
        public void OnSample(in Sample sample) => Frames += sample.Frames.Length;
        public void Flush() { }
        public void Complete() { }
    }

    [Theory]
    [InlineData("bash_loop")]
    [InlineData("path_with_space")]
    public void RewriteAllocatesNothingPerLine(string capture)
    {
        var data = new ReadOnlySequence<byte>(Fixtures.ReadBytes("ftrace", capture, "raw.txt"));
        var maps = FtraceTestData.LoadSnapshots(capture);
        new LineFramer(new Maps.ExecScanner(maps)).Process(data, true, null);   // the first pass of a file input
        var rewriter = new UserStackRewriter(new RewriteOptions { Maps = maps, KeepAddress = true });
        var output = new ArrayBufferWriter<byte>(4 << 20);
        new LineFramer(rewriter).Process(data, true, output);
        long rewritten = rewriter.Statistics.Rewritten;
        Assert.True(rewritten > 500);
        output.ResetWrittenCount();
        var framer = new LineFramer(rewriter);
        long before = GC.GetAllocatedBytesForCurrentThread();
        framer.Process(data, true, output);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(2 * rewritten, rewriter.Statistics.Rewritten);
        Assert.True(allocated == 0, $"{allocated} bytes allocated over {framer.LinesSeen} lines");
    }

    [Theory]
    [InlineData("bash_loop")]
    [InlineData("python_script")]
    public void SampleBuildingAllocatesNothingPerEvent(string capture)
    {
        var data = new ReadOnlySequence<byte>(Fixtures.ReadBytes("ftrace", capture, "raw.txt"));
        var sink = new NullSink();
        var maps = FtraceTestData.LoadSnapshots(capture);
        new LineFramer(new Maps.ExecScanner(maps)).Process(data, true, null);
        var builder = new FtraceSampleSource.SampleBuilder(sink, new FtraceSampleSourceOptions { Maps = maps },
            new Diagnostics.ErrorTally(), capture);
        new LineFramer(builder).Process(data, true, null);
        builder.Finish();
        long samples = builder.Samples;
        var framer = new LineFramer(builder);
        long before = GC.GetAllocatedBytesForCurrentThread();
        framer.Process(data, true, null);
        builder.Finish();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(2 * samples, builder.Samples);
        Assert.True(allocated == 0, $"{allocated} bytes allocated over {samples} samples");
    }
}
