using TraceUnwind.Testing;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// However the bytes arrive, the samples are the same: pipe-mode and file-mode captures read
/// from a seekable file and from non-seekable streams that return 1 byte, 7 bytes or random sizes
/// per read (the every-split idea of System.Text.Json's tests, applied to a stream).
/// </summary>
public sealed class StreamingTests
{
    public static TheoryData<string, string> Splits() => new()
    {
        { "perf-local/pipe.data", "1" }, { "perf-local/pipe.data", "7" }, { "perf-local/pipe.data", "random" },
        { "perf-local/pipe-tp.data", "1" }, { "perf-local/pipe-tp.data", "random" },
        { "perf-local/zstd.data", "1" }, { "perf-local/zstd.data", "random" },
        { "perf/python_script/fp.data", "7" }, { "perf/bash_loop/tp.data", "random" },
        { "perf-defer/recur-defer/perf.data", "random" },
    };

    [Theory]
    [MemberData(nameof(Splits))]
    public void SameSamplesHoweverTheBytesArrive(string capture, string split)
    {
        string path = Fixtures.Path(capture.Split('/'));
        var (expected, t0, s0) = Run.File(path);
        Assert.Equal(0, t0.ErrorCount);
        var rng = new Random(capture.Length * 31 + split.Length);
        Func<int> size = split switch
        {
            "1" => () => 1,
            "7" => () => 7,
            _ => () => rng.Next(1, 70_000),
        };
        var stream = new ChunkedStream(File.ReadAllBytes(path), size);
        var (got, tally, session) = Run.Samples(stream, capture);
        Assert.Equal(0, tally.ErrorCount);
        Assert.Equal(expected.Count, got.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var e = expected[i];
            var g = got[i];
            Assert.Equal((e.Time, e.Pid, e.Tid, e.Comm, e.Cookie), (g.Time, g.Pid, g.Tid, g.Comm, g.Cookie));
            Assert.Equal(e.Frames.Select(f => (f.Address, f.Kind, f.Mapping?.Path, f.Mapping?.Start)),
                         g.Frames.Select(f => (f.Address, f.Kind, f.Mapping?.Path, f.Mapping?.Start)));
            if (!s0.IsPipeMode && session.FeaturesComplete && !e.Event.Equals(g.Event))
                Assert.Fail($"sample {i}: event {g.Event} vs {e.Event}");
        }
        if (s0.IsPipeMode)
        {
            // Pipe mode names events from its HEADER_FEATURE records, which come before the data.
            Assert.Equal(expected.Select(s => s.Event), got.Select(s => s.Event));
        }
        else
        {
            // A file on a non-seekable stream: features come after the data, so the names known
            // while samples flow are the attr's; the session has them all at the end.
            Assert.True(session.FeaturesComplete);
            Assert.Equal(s0.Events.Select(e => e.Name), session.Events.Select(e => e.Name));
            Assert.Equal(s0.Arch, session.Arch);
            Assert.Equal(s0.Cmdline, session.Cmdline);
        }
    }
}

/// <summary>Progress, flushing and cancellation as the CLI sees them.</summary>
public sealed class SourceBehaviourTests
{
    [Fact]
    public async Task ProgressFlushAndComplete()
    {
        string path = Fixtures.Path("perf-local", "pipe.data");
        byte[] data = File.ReadAllBytes(path);
        var calls = new List<(long Bytes, long Samples)>();
        var sink = new CollectingSink();
        var source = new PerfSampleSource(new ChunkedStream(data, () => 4096), "pipe", new PerfReadOptions { Progress = (b, s) => calls.Add((b, s)) }, new());
        await source.RunAsync(sink, CancellationToken.None);
        Assert.Equal(1, sink.Completes);
        Assert.True(sink.Flushes > 0, "a non-seekable input that has no bytes ready makes the sinks flush");
        Assert.Equal((data.LongLength, (long)sink.Samples.Count), calls[^1]); // the last report: everything

        var seekable = new CollectingSink();
        await using var file = File.OpenRead(path);
        await new PerfSampleSource(file, "pipe", new PerfReadOptions(), new()).RunAsync(seekable, CancellationToken.None);
        Assert.Equal((0, 1), (seekable.Flushes, seekable.Completes));
        Assert.Equal(sink.Samples.Count, seekable.Samples.Count);
    }

    [Fact]
    public async Task CancellationStopsTheRun()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var source = new PerfSampleSource(File.OpenRead(Fixtures.Path("perf", "bash_loop", "fp.data")), "fp", new PerfReadOptions(), new());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => source.RunAsync(new CollectingSink(), cts.Token));
    }
}
