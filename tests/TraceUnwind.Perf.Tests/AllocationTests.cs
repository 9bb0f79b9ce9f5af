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
    private sealed class Repeater(PerfSession session, PerfDataWriter writer, int copies) : PerfRecordHandler
    {
        public int Samples;
        private bool _started;
        private void Start() { if (!_started) { _started = true; writer.AddEvents(session); } }
        public override void OnSample(in PerfSample s) { Start(); for (int i = 0; i < copies; i++) { writer.WriteRecord(s.Record.Bytes); Samples++; } }
        public override void OnMmap(in PerfMmap m) { Start(); writer.WriteRecord(m.Record.Bytes); }
        public override void OnComm(in PerfComm c) { Start(); writer.WriteRecord(c.Record.Bytes); }
        public override void OnFork(in PerfTaskEvent t) { Start(); writer.WriteRecord(t.Record.Bytes); }
        public override void OnExit(in PerfTaskEvent t) { Start(); writer.WriteRecord(t.Record.Bytes); }
        public override void OnOtherRecord(in PerfRecord r) { Start(); writer.WriteRecord(r.Bytes); }
        public override void OnEnd() { writer.CopyRawFeatures(session); writer.Complete(); }
    }

    private static byte[] WithSamplesRepeated(string path, int copies, out int samples)
    {
        var ms = new MemoryStream();
        using var fs = File.OpenRead(path);
        var reader = new PerfRecordReader(fs, path, new PerfReadOptions { Order = PerfRecordOrder.File });
        var rep = new Repeater(reader.Session, new PerfDataWriter(ms), copies);
        reader.Run(rep);
        samples = rep.Samples;
        return ms.ToArray();
    }

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
        byte[] once = WithSamplesRepeated(path, 1, out int n1);
        byte[] four = WithSamplesRepeated(path, 4, out int n4);
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
