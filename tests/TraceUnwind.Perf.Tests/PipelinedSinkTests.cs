using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Testing;
using Xunit.Abstractions;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// Runs alone, after the parallel test classes: its runs start threads of their own, and the
/// allocation tests (here and in <see cref="AllocationTests"/>) count bytes per thread while others run.
/// </summary>
[CollectionDefinition(nameof(PipelinedSinkTests), DisableParallelization = true)]
public sealed class PipelinedSinkTestsCollection;

/// <summary>
/// Large inputs are read on one thread and handed to the sink on another (<see cref="PipelinedSink"/>):
/// the sink must see exactly what it sees on one thread, in the same order, with the same end
/// (Complete once; after a failure, the samples read so far and no Complete), failures must reach the
/// caller as they are, and nothing may be allocated per sample on either thread.
/// </summary>
[Collection(nameof(PipelinedSinkTests))]
public sealed class PipelinedSinkTests(ITestOutputHelper output)
{
    public static TheoryData<string> Captures =>
    [
        "perf/bash_loop/fp.data", "perf/python_script/tp.data", "perf/dlopen/fp.data",
        "perf-defer/bash-defer/perf.data", "perf-defer/recur-fp/perf.data", "perf-local/zstd.data", "perf-local/pipe.data",
    ];

    private static (CollectingSink Sink, int SinkThread) RunOnce(byte[] data, bool pipelined, PerfReadOptions? options = null)
    {
        var sink = new ThreadRecordingSink();
        var source = new PerfSampleSource(new MemoryStream(data), "capture", options ?? new PerfReadOptions(), new ErrorTally());
        source.PipelineMinBytes = pipelined ? 0 : long.MaxValue;
        source.RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult();
        return (sink.Inner, sink.Thread);
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void TheSinkSeesWhatItSeesOnOneThread(string capture)
    {
        byte[] data = File.ReadAllBytes(Fixtures.Path(capture.Split('/')));
        var options = new PerfReadOptions { EmitDeferredCallchains = capture.Contains("defer") };
        var (direct, directThread) = RunOnce(data, pipelined: false, options);
        var (piped, pipedThread) = RunOnce(data, pipelined: true, options);
        Assert.Equal(Environment.CurrentManagedThreadId, directThread);
        if (Environment.ProcessorCount > 1) Assert.NotEqual(Environment.CurrentManagedThreadId, pipedThread);
        Assert.NotEmpty(direct.Samples);
        // Mappings are objects of each run's own process model: compare them by what they are.
        static string Key(CopiedSample s) =>
            $"{s.Index} {s.Time} {s.Pid}/{s.Tid} [{s.Cpu}] {s.Period} {s.Ip:x} {s.Comm} {s.Event} {s.Kind} {s.Cookie:x}: " +
            string.Join(" ", s.Frames.Select(f => $"{f.Address:x}/{f.Kind}/{f.Flags}/{f.Mapping}"));
        Assert.Equal(direct.Samples.Select(Key), piped.Samples.Select(Key));
        Assert.Equal((0, 1), (piped.Flushes, piped.Completes));
        Assert.Equal((direct.Flushes, direct.Completes), (piped.Flushes, piped.Completes));
    }

    /// <summary>An unwinder writes its frames straight into the batch on the two-thread path: the same samples as on one thread.</summary>
    [Theory]
    [InlineData("perf/bash_loop/dwarf.data")]
    [InlineData("perf/python_script/dwarf.data")]
    public void UnwoundFramesComeThroughTheSameWay(string capture)
    {
        byte[] data = File.ReadAllBytes(Fixtures.Path(capture.Split('/')));
        var (direct, _) = RunOnce(data, pipelined: false, new PerfReadOptions { Unwinder = new StepUnwinder() });
        var (piped, _) = RunOnce(data, pipelined: true, new PerfReadOptions { Unwinder = new StepUnwinder() });
        static string Key(CopiedSample s) => $"{s.Index} {s.Time} {s.Tid}: " + string.Join(" ", s.Frames.Select(f => $"{f.Address:x}/{f.Kind}/{f.Flags}/{f.Mapping}"));
        Assert.Contains(direct.Samples, s => s.Frames.Count(f => f.Kind == FrameKind.User) == 40);
        Assert.Equal(direct.Samples.Select(Key), piped.Samples.Select(Key));
    }

    /// <summary>Writes 40 user frames per stack (the registers' ip, then made-up return addresses), named from the maps.</summary>
    private sealed class StepUnwinder : TraceUnwind.Unwinding.IUserStackUnwinder
    {
        public int Unwind(in TraceUnwind.Unwinding.CapturedUserStack stack, AddressSpace maps, Span<Frame> frames, out TraceUnwind.Unwinding.UnwindStop stop)
        {
            ulong ip = stack.Regs[8];
            int n = Math.Min(40, frames.Length);
            for (int i = 0; i < n; i++)
            {
                ulong a = ip + (ulong)i * 16;
                frames[i] = new Frame(a, FrameKind.User, maps.Find(a), i == 0 ? FrameFlags.None : FrameFlags.ReturnAddress);
            }
            stop = TraceUnwind.Unwinding.UnwindStop.Outermost;
            return n;
        }
    }

    /// <summary>Samples, flushes and the end keep their order across batch boundaries (samples and frames).</summary>
    [Fact]
    public void OrderAndFramesAcrossBatches()
    {
        var events = new List<string>();
        var sink = new ListSink(events);
        var p = new PipelinedSink(sink);
        var m = new Mapping(0x1000, 0x9000, 0, "/bin/x");
        var frames = new Frame[5000];
        var expected = new List<string>();
        for (int i = 0; i < 3000; i++)
        {
            int n = i % 7 == 0 ? 4000 : i % 5; // some samples fill a batch's frames, some have none
            for (int k = 0; k < n; k++) frames[k] = new Frame((ulong)(i * 10000 + k), k % 2 == 0 ? FrameKind.User : FrameKind.Kernel, k % 3 == 0 ? m : null);
            var s = new Sample { Index = i, Time = (ulong)i * 3, Pid = i, Tid = -i, Cpu = i % 4, Period = 7, Comm = $"c{i % 3}", Event = "e", Frames = frames.AsSpan(0, n) };
            p.OnSample(in s);
            expected.Add(ListSink.Line(s));
            if (i % 1000 == 999)
            {
                p.Flush();
                expected.Add("flush");
            }
        }
        p.Finish(complete: true);
        expected.Add("complete");
        Assert.Equal(expected, events);
    }

    /// <summary>An output error (a closed pipe) reaches the caller as the same exception, and the run ends there.</summary>
    [Fact]
    public void ASinkFailureReachesTheCaller()
    {
        byte[] data = File.ReadAllBytes(Fixtures.Path("perf", "python_script", "fp.data"));
        var failure = new IOException("Broken pipe");
        var sink = new FailingSink(after: 50, failure);
        var source = new PerfSampleSource(new MemoryStream(data), "capture", new PerfReadOptions(), new ErrorTally()) { PipelineMinBytes = 0 };
        var thrown = Assert.Throws<IOException>(() => source.RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult());
        Assert.Same(failure, thrown);
        Assert.Equal(50, sink.Samples);
        Assert.Equal(0, sink.Completes);
    }

    /// <summary>A front-end failure: the samples before it still reach the sink, no Complete, the caller gets the failure.</summary>
    [Fact]
    public void AFrontEndFailureDeliversWhatWasRead()
    {
        byte[] data = File.ReadAllBytes(Fixtures.Path("perf", "python_script", "fp.data"));
        var options = new PerfReadOptions { RecordStage = (_, next) => new ThrowingStage(next, at: 100) };
        var sink = new CollectingSink();
        var source = new PerfSampleSource(new MemoryStream(data), "capture", options, new ErrorTally()) { PipelineMinBytes = 0 };
        Assert.Throws<InvalidOperationException>(() => source.RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult());
        Assert.Equal(100, sink.Samples.Count);
        Assert.Equal(0, sink.Completes);
    }

    /// <summary>
    /// No allocation per sample on either thread: the capture with every sample repeated 12 times costs
    /// the reading thread and the sink's thread no more than the capture itself (fixed costs: the thread,
    /// the batches; a few KiB vary with whether a thread had to wait for the other).
    /// </summary>
    [Theory]
    [InlineData("perf/python_script/fp.data")]
    [InlineData("perf-defer/bash-fp/perf.data")]
    public void NoAllocationPerSampleOnEitherThread(string capture)
    {
        string path = Fixtures.Path(capture.Split('/'));
        byte[] once = SampleRepeat.WithSamplesRepeated(path, 1, out int n1);
        byte[] four = SampleRepeat.WithSamplesRepeated(path, 12, out int n4);
        Measure(once, out _, out _);
        Measure(four, out _, out _);
        long reader1 = Measure(once, out long sink1, out long s1);
        long reader4 = Measure(four, out long sink4, out long s4);
        Assert.Equal((n1, n4), ((int)s1, (int)s4));
        output.WriteLine($"{capture}: reading thread {reader1} -> {reader4} bytes, sink thread {sink1} -> {sink4} bytes for {n1} -> {n4} samples");
        Assert.True(Math.Abs(reader4 - reader1) < 16384, $"reading thread: {reader4 - reader1} more bytes for {n4 - n1} more samples");
        Assert.True(Math.Abs(sink4 - sink1) < 1024, $"sink thread: {sink4 - sink1} more bytes for {n4 - n1} more samples");
    }

    private static long Measure(byte[] data, out long sinkBytes, out long samples)
    {
        var sink = new AllocationProbeSink();
        var source = new PerfSampleSource(new MemoryStream(data), "alloc", new PerfReadOptions(), new ErrorTally()) { PipelineMinBytes = 0 };
        long before = GC.GetAllocatedBytesForCurrentThread();
        var task = source.RunAsync(sink, CancellationToken.None);
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.True(task.IsCompletedSuccessfully, "the run must complete synchronously for the per-thread count to see all of it");
        sinkBytes = sink.Allocated;
        samples = sink.Samples;
        return after - before;
    }

    private sealed class ThreadRecordingSink : ISampleSink
    {
        public CollectingSink Inner { get; } = new();
        public int Thread { get; private set; }
        public void OnSample(in Sample s) { Thread = Environment.CurrentManagedThreadId; Inner.OnSample(s); }
        public void Flush() => Inner.Flush();
        public void Complete() => Inner.Complete();
    }

    private sealed class ListSink(List<string> events) : ISampleSink
    {
        public static string Line(in Sample s)
        {
            var parts = new List<string> { $"{s.Index} {s.Time} {s.Pid}/{s.Tid} {s.Cpu} {s.Period} {s.Comm} {s.Event} {s.Frames.Length}" };
            foreach (var f in s.Frames) parts.Add($"{f.Address:x}{f.Kind}{f.Mapping?.Path}");
            return string.Join(";", parts);
        }

        public void OnSample(in Sample s) => events.Add(Line(s));
        public void Flush() => events.Add("flush");
        public void Complete() => events.Add("complete");
    }

    private sealed class FailingSink(int after, Exception failure) : ISampleSink
    {
        public int Samples, Completes;
        public void OnSample(in Sample s)
        {
            if (Samples == after) throw failure;
            Samples++;
        }
        public void Flush() { }
        public void Complete() => Completes++;
    }

    private sealed class ThrowingStage(IPerfRecordHandler next, int at) : PerfRecordHandler
    {
        private int _samples;
        public override void OnSample(in PerfSample s)
        {
            if (_samples++ == at) throw new InvalidOperationException("stage failure");
            next.OnSample(s);
        }
        public override void OnMmap(in PerfMmap m) => next.OnMmap(m);
        public override void OnComm(in PerfComm c) => next.OnComm(c);
        public override void OnFork(in PerfTaskEvent f) => next.OnFork(f);
        public override void OnExit(in PerfTaskEvent e) => next.OnExit(e);
    }

    /// <summary>Counts what its own thread allocates between the first sample and the end (the sink's thread).</summary>
    private sealed class AllocationProbeSink : ISampleSink
    {
        private long _start = -1;
        public long Allocated, Samples;
        private ulong _checksum;
        public void OnSample(in Sample s)
        {
            if (_start < 0) _start = GC.GetAllocatedBytesForCurrentThread();
            Samples++;
            foreach (var f in s.Frames) _checksum += f.Address;
        }
        public void Flush() { }
        public void Complete() => Allocated = GC.GetAllocatedBytesForCurrentThread() - _start;
    }
}
