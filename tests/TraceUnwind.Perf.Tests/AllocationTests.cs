using TraceUnwind.Diagnostics;
using TraceUnwind.Testing;
using Xunit.Abstractions;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// No allocation per record: a real capture is rewritten with every SAMPLE record repeated
/// (1x and 4x; the other records once), and the whole pipeline — framing, time ordering, decoding,
/// process model, frames, sink — runs over both after a warm-up. What a run allocates
/// (<see cref="GC.GetAllocatedBytesForCurrentThread"/>; the run completes synchronously on this
/// thread, which the test checks) must not grow with the number of samples.
/// </summary>
public sealed class AllocationTests(ITestOutputHelper output)
{
    private static long Allocated(byte[] data, out CountingSink sink)
    {
        sink = new CountingSink();
        var source = new PerfSampleSource(new MemoryStream(data), "alloc", new PerfReadOptions(), new ErrorTally());
        long before = GC.GetAllocatedBytesForCurrentThread();
        var task = source.RunAsync(sink, CancellationToken.None);
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.True(task.IsCompletedSuccessfully, "the run must complete synchronously for the per-thread count to see all of it");
        return after - before;
    }

    [Theory]
    [InlineData("perf-defer/bash-fp/perf.data")]
    [InlineData("perf/python_script/fp.data")]
    [InlineData("perf/bash_loop/tp.data")]
    public void AllocationDoesNotGrowWithSamples(string capture)
    {
        string path = Fixtures.Path(capture.Split('/'));
        byte[] once = SampleRepeat.WithSamplesRepeated(path, 1, out int n1);
        byte[] four = SampleRepeat.WithSamplesRepeated(path, 4, out int n4);
        Allocated(once, out _); // warm-up: JIT, static tables, pools
        Allocated(four, out _);
        // The least of three runs each: a one-time event in the runtime (a pool or a cache of the
        // framework growing on this thread while other tests run) shows in one run, not in all three;
        // an allocation per sample shows in every run.
        long a1 = long.MaxValue, a4 = long.MaxValue;
        CountingSink s1 = null!, s4 = null!;
        for (int round = 0; round < 3; round++)
        {
            a1 = Math.Min(a1, Allocated(once, out s1));
            a4 = Math.Min(a4, Allocated(four, out s4));
        }
        Assert.Equal((long)n1, s1.Samples);
        Assert.Equal((long)n4, s4.Samples);
        long extra = n4 - n1;
        double perSample = (double)(a4 - a1) / extra;
        output.WriteLine($"{capture}: {n1} samples: {a1} bytes allocated; {n4} samples: {a4} bytes; {perSample:F2} bytes per extra sample ({s4.Frames} frames)");
        // The fixed cost (buffers, process table, interned names) is the same for both; each of the
        // thousands of extra samples (and its frames) may add nothing. 4 KiB of slack covers one
        // growth of a queue array.
        Assert.True(Math.Abs(a4 - a1) < 4096, $"{a4 - a1} more bytes for {extra} more samples ({perSample:F2} per sample)");
    }
}
