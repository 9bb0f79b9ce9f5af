using TraceUnwind.Diagnostics;
using TraceUnwind.Perf.Deferred;
using TraceUnwind.Testing;
using Xunit.Abstractions;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// The joiner allocates nothing per sample: a real deferred capture replicated 1x and 4x
/// (<see cref="CaptureReplicator"/>: copies one after the other, new tids; synthetic) runs through the
/// reader and the joiner after a warm-up; what a run allocates must not grow with the copies. Held samples
/// live in pooled buffers, thread states and held-sample entries are recycled.
/// </summary>
public sealed class DeferredAllocationTests(ITestOutputHelper output)
{
    /// <summary>Touches every delivered sample's chain (so nothing is optimized away) and keeps nothing.</summary>
    private sealed class ChainSum : PerfRecordHandler
    {
        public long Samples;
        public ulong Sum;
        public override void OnSample(in PerfSample s)
        {
            Samples++;
            foreach (ulong ip in s.Callchain) Sum += ip;
        }
    }

    private static byte[] Replicated(int copies)
    {
        var ms = new MemoryStream();
        CaptureReplicator.Write(Fixtures.Path("perf-defer", "recur-defer", "perf.data"), ms, copies);
        return ms.ToArray();
    }

    private static long Allocated(byte[] data, out ChainSum sink, out DeferredJoinStats stats)
    {
        sink = new ChainSum();
        var tally = new ErrorTally();
        using var reader = new PerfRecordReader(new MemoryStream(data), "alloc", new PerfReadOptions(), tally);
        var joiner = new DeferredCallchainJoiner(reader.Session, sink, tally);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var task = reader.RunAsync(joiner);
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.True(task.IsCompletedSuccessfully, "the run must complete synchronously for the per-thread count to see all of it");
        Assert.Equal(0, tally.ErrorCount);
        stats = joiner.Stats;
        return after - before;
    }

    [Fact]
    public void JoinerAllocationDoesNotGrowWithSamples()
    {
        byte[] once = Replicated(1), four = Replicated(4);
        Allocated(once, out _, out _); // warm-up: JIT, pools
        Allocated(four, out _, out _);
        long a1 = Allocated(once, out var s1, out var j1);
        long a4 = Allocated(four, out var s4, out var j4);
        // The replicas join exactly as the original (862 with a later record, 2 with an earlier one).
        Assert.Equal((864L, 862L, 2L, 0L), (s1.Samples, j1.JoinedLater, j1.JoinedEarlier, j1.Lost));
        Assert.Equal((4 * 864L, 4 * 862L, 8L, 0L), (s4.Samples, j4.JoinedLater, j4.JoinedEarlier, j4.Lost));
        Assert.Equal(j1.PeakPending, j4.PeakPending);
        double perSample = (double)(a4 - a1) / (s4.Samples - s1.Samples);
        output.WriteLine($"x1: {s1.Samples} samples, {a1} bytes; x4: {s4.Samples} samples, {a4} bytes; {perSample:F2} bytes per extra sample; peak {j4.PeakPending} waiting");
        Assert.True(Math.Abs(a4 - a1) < 4096, $"{a4 - a1} more bytes for {s4.Samples - s1.Samples} more samples ({perSample:F2} per sample)");
    }
    private static long AllocatedThroughBuilder(byte[] data, out CountingSink sink, out DeferredJoinStats stats)
    {
        sink = new CountingSink();
        var tally = new ErrorTally();
        DeferredCallchainJoiner? joiner = null;
        var options = new PerfReadOptions { RecordStage = DeferredCallchainJoiner.Stage(tally, null, j => joiner = j) };
        var source = new PerfSampleSource(new MemoryStream(data), "alloc", options, tally);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var task = source.RunAsync(sink, CancellationToken.None);
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.True(task.IsCompletedSuccessfully, "the run must complete synchronously for the per-thread count to see all of it");
        Assert.Equal(0, tally.ErrorCount);
        stats = joiner!.Stats;
        return after - before;
    }

    [Fact]
    public void JoinerIntoTheBuilderAllocatesNothingPerSample()
    {
        // The CLI's path: the reader hands deferred samples over undecoded, the joiner gives joined ones to the
        // builder in two parts, frames go to the sink. Least of three runs (one-time runtime growth is not per sample).
        // Each replica is a new process, so the process model allocates per copy (its process entry, maps, comm:
        // about 1.5 KiB, under 2 bytes per sample); an object per sample would be 24 bytes or more per sample.
        byte[] once = Replicated(1), four = Replicated(4);
        AllocatedThroughBuilder(once, out _, out _);
        AllocatedThroughBuilder(four, out _, out _);
        long a1 = long.MaxValue, a4 = long.MaxValue;
        CountingSink s1 = null!, s4 = null!;
        DeferredJoinStats j1 = null!, j4 = null!;
        for (int round = 0; round < 3; round++)
        {
            a1 = Math.Min(a1, AllocatedThroughBuilder(once, out s1, out j1));
            a4 = Math.Min(a4, AllocatedThroughBuilder(four, out s4, out j4));
        }
        Assert.Equal((864L, 862L, 2L), (s1.Samples, j1.JoinedLater, j1.JoinedEarlier));
        Assert.Equal((4 * 864L, 4 * 862L, 8L), (s4.Samples, j4.JoinedLater, j4.JoinedEarlier));
        Assert.Equal(4 * s1.Frames, s4.Frames);
        double perSample = (double)(a4 - a1) / (s4.Samples - s1.Samples);
        output.WriteLine($"x1: {s1.Samples} samples, {a1} bytes; x4: {s4.Samples} samples, {a4} bytes; {perSample:F2} bytes per extra sample");
        Assert.True(perSample < 4, $"{a4 - a1} more bytes for {s4.Samples - s1.Samples} more samples ({perSample:F2} per sample)");
    }
}
