using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Pipeline;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Testing;

namespace TraceUnwind.Ftrace.Tests;

/// <summary>The streaming loop: flush as blocks complete, stop quietly on a closed output, flush on cancel.</summary>
public class LinePipelineTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private const string Event = "    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\n";
    private const string Frames = " =>  <0000562c3a152202>\n =>  <00007fa7711be24a>\n";
    private const string Rewritten = " => /tmp/tu/bin/probe_helper[+0x202]\n => /usr/lib/x86_64-linux-gnu/libc.so.6[+0x124a]\n";

    private static MapsSnapshots Maps()
    {
        var snaps = new MapsSnapshots();
        MapsSnapshotReader.Read(Encoding.UTF8.GetBytes("==> /proc/17388/maps <==\n" + Fixtures.ReadText("ftrace", "formats", "72_fake_frames.maps")), "72", snaps);
        return snaps;
    }

    private static async Task<string> ReadUntilAsync(PipeReader reader, string expected, StringBuilder seen)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!seen.ToString().EndsWith(expected, StringComparison.Ordinal))
        {
            var r = await reader.ReadAsync(cts.Token);
            foreach (var m in r.Buffer) seen.Append(Encoding.UTF8.GetString(m.Span));
            reader.AdvanceTo(r.Buffer.End);
            if (r.IsCompleted) break;
        }
        return seen.ToString();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]   // with a maps snapshot source the pipe path also scans ahead (held back until the input idles)
    public async Task ABlockIsWrittenBeforeTheInputEnds(bool snapshots)
    {
        var input = new Pipe();
        var output = new Pipe();
        IMapsSource maps = snapshots ? Maps() : new StaticMaps(Maps());
        var rewriter = new UserStackRewriter(new RewriteOptions { Maps = maps });
        var pipeline = new LinePipeline(rewriter, lookahead: snapshots ? new ExecScanner(maps) : null);
        var run = pipeline.RunAsync(input.Reader, output.Writer);

        // A trace_pipe reader writes one block and then nothing for a while.
        await input.Writer.WriteAsync(Encoding.UTF8.GetBytes("# tracer: nop\n" + Event + Frames));
        var seen = new StringBuilder();
        var got = await ReadUntilAsync(output.Reader, "# tracer: nop\n" + Event + Rewritten, seen);
        Assert.Equal("# tracer: nop\n" + Event + Rewritten, got);
        Assert.False(run.IsCompleted);

        // Half a line is not written until its newline comes.
        await input.Writer.WriteAsync(Encoding.UTF8.GetBytes(Event + " =>  <0000562c3a"));
        got = await ReadUntilAsync(output.Reader, Event + Rewritten + Event, seen);
        Assert.Equal("# tracer: nop\n" + Event + Rewritten + Event, got);
        await Task.Delay(100);
        if (output.Reader.TryRead(out var early))
        {
            Assert.Equal(0, early.Buffer.Length);
            output.Reader.AdvanceTo(early.Buffer.End);
        }
        await input.Writer.WriteAsync(Encoding.UTF8.GetBytes("152202>\n"));
        got = await ReadUntilAsync(output.Reader, Rewritten + Event + " => /tmp/tu/bin/probe_helper[+0x202]\n", seen);
        Assert.Equal("# tracer: nop\n" + Event + Rewritten + Event + " => /tmp/tu/bin/probe_helper[+0x202]\n", got);

        await input.Writer.CompleteAsync();
        Assert.Equal(PipelineEnd.Completed, await run.WaitAsync(Patience));
    }

    /// <summary>Snapshots wrapped so that the source is not recognised as one (no look-ahead), same answers.</summary>
    private sealed class StaticMaps(MapsSnapshots inner) : IMapsSource
    {
        public bool IsTimeAware => inner.IsTimeAware;
        public int ProcessOf(int tid) => inner.ProcessOf(tid);
        public Processes.Mapping? FindVma(int tgid, in TracePoint when, ulong ip) => inner.FindVma(tgid, when, ip);
        public void OnExec(int pid, in TracePoint when) => inner.OnExec(pid, when);
        public void OnFork(int parentPid, int childPid, in TracePoint when) { }
        public void OnExit(int pid, bool groupDead, in TracePoint when) { }
    }

    /// <summary>An input that never ends: the same real lines over and over.</summary>
    private sealed class EndlessStream(byte[] chunk) : ReadOnlyTestStream
    {
        private int _pos;
        public long Delivered;
        public override int Read(Span<byte> buffer)
        {
            int n = Math.Min(buffer.Length, chunk.Length - _pos);
            chunk.AsSpan(_pos, n).CopyTo(buffer);
            _pos = (_pos + n) % chunk.Length;
            Delivered += n;
            return n;
        }
    }


    [Fact]
    public async Task AClosedOutputEndsTheRunQuietly()
    {
        var chunk = Fixtures.ReadBytes("ftrace", "bash_loop", "raw.txt");
        // An output pipe whose reader completed (| head exited).
        var output = new Pipe();
        await output.Reader.CompleteAsync();
        var endless = new EndlessStream(chunk);
        var end = await new LinePipeline(new UserStackRewriter(new RewriteOptions { Maps = FtraceTestData.LoadSnapshots("bash_loop") }))
            .RunAsync(PipeReader.Create(endless), output.Writer).WaitAsync(Patience);
        Assert.Equal(PipelineEnd.OutputClosed, end);

        // A stream that fails with EPIPE after 100 KB: no exception, OutputClosed.
        var broken = new BrokenPipeStream(100_000);
        var result = await FtraceRewriter.RunAsync(new EndlessStream(chunk), broken, new RewriteOptions { Maps = FtraceTestData.LoadSnapshots("bash_loop") },
            new ErrorTally(), "endless").WaitAsync(Patience);
        Assert.Equal(PipelineEnd.OutputClosed, result.End);
        Assert.True(broken.Written <= 100_000);
    }

    [Fact]
    public async Task CancellationFlushesWhatWasRead()
    {
        var input = new Pipe();
        var output = new Pipe();
        using var cts = new CancellationTokenSource();
        var run = new LinePipeline(new UserStackRewriter(new RewriteOptions { Maps = new StaticMaps(Maps()) }))
            .RunAsync(input.Reader, output.Writer, cts.Token);
        await input.Writer.WriteAsync(Encoding.UTF8.GetBytes(Event + Frames + "partial line, no newline yet"));
        var seen = new StringBuilder();
        await ReadUntilAsync(output.Reader, Rewritten, seen);
        cts.Cancel();
        Assert.Equal(PipelineEnd.Canceled, await run.WaitAsync(Patience));
        await output.Writer.CompleteAsync();
        var all = await ReadUntilAsync(output.Reader, "\u0000never", seen);
        Assert.Equal(Event + Rewritten + "partial line, no newline yet", all);
    }

    [Fact]
    public async Task MemoryStaysFlatOnEndlessInput()
    {
        // 200 MB of real trace lines through the rewrite with the live source (every pid unknown
        // here): the pipeline's buffers and the source's caches must not grow with the input.
        var chunk = Fixtures.ReadBytes("ftrace", "forkexec", "raw.txt");
        var live = new LiveProcMaps(Path.Combine(Path.GetTempPath(), "tu-none-" + Guid.NewGuid()), capacity: 64);
        var endless = new LimitedStream(new EndlessStream(chunk), 200L << 20);
        var result = await FtraceRewriter.RunAsync(endless, Stream.Null, new RewriteOptions { Maps = live }, new ErrorTally(), "endless").WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(PipelineEnd.Completed, result.End);
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var endless2 = new LimitedStream(new EndlessStream(chunk), 400L << 20);
        await FtraceRewriter.RunAsync(endless2, Stream.Null, new RewriteOptions { Maps = live }, new ErrorTally(), "endless").WaitAsync(TimeSpan.FromMinutes(2));
        long after = GC.GetTotalMemory(forceFullCollection: true);
        Assert.True(after - before < 8 << 20, $"heap grew by {after - before} bytes over 400 MB of input");
        Assert.True(live.CachedProcesses <= 64);
    }

    private sealed class LimitedStream(Stream inner, long limit) : ReadOnlyTestStream
    {
        private long _left = limit;
        public override int Read(Span<byte> buffer)
        {
            if (_left <= 0) return 0;
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
            _left -= n;
            return n;
        }
    }
}

/// <summary>
/// A stream like stdin on a pipe or a FIFO: it delivers what was written, then its read blocks
/// in the "kernel" and does not look at the cancellation token.
/// </summary>
internal sealed class BlockingStream : ReadOnlyTestStream
{
    private readonly System.Collections.Concurrent.BlockingCollection<byte[]> _chunks = new();
    private byte[] _current = [];
    private int _pos;

    public void Add(string text) => _chunks.Add(Encoding.UTF8.GetBytes(text));
    public void End() => _chunks.CompleteAdding();

    public override int Read(Span<byte> buffer)
    {
        if (_pos == _current.Length)
        {
            if (!_chunks.TryTake(out var next, Timeout.Infinite)) return 0;   // blocks, token or not
            _current = next;
            _pos = 0;
        }
        int n = Math.Min(buffer.Length, _current.Length - _pos);
        _current.AsSpan(_pos, n).CopyTo(buffer);
        _pos += n;
        return n;
    }
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        new(Task.Run(() => Read(buffer.Span), CancellationToken.None));
}

public class BlockingInputTests
{
    private const string Event = "    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\n";

    private static MapsSnapshots Snapshots()
    {
        var snaps = new MapsSnapshots();
        MapsSnapshotReader.Read(Encoding.UTF8.GetBytes("==> /proc/17388/maps <==\n" + Fixtures.ReadText("ftrace", "formats", "72_fake_frames.maps")), "72", snaps);
        return snaps;
    }

    private sealed class ObservableStream : MemoryStream
    {
        public string Text { get { lock (this) return Encoding.UTF8.GetString(ToArray()); } }
        public override void Write(ReadOnlySpan<byte> buffer) { lock (this) base.Write(buffer); }
        public override void Write(byte[] buffer, int offset, int count) { lock (this) base.Write(buffer, offset, count); }
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) { Write(buffer.Span); return ValueTask.CompletedTask; }
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition() && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.True(condition());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]   // --maps on a pipe: held-back lines are released when the input goes quiet
    public async Task CtrlCFlushesWhatWasReadWhileTheReadBlocks(bool snapshots)
    {
        var input = new BlockingStream();
        var output = new ObservableStream();
        using var cts = new CancellationTokenSource();
        IMapsSource maps = snapshots ? Snapshots() : new LiveProcMaps("/nonexistent-proc");
        var run = FtraceRewriter.RunAsync(input, output, new RewriteOptions { Maps = maps }, new ErrorTally(), "stdin", cts.Token);
        input.Add(Event + " =>  <0000562c3a152202>\n");
        string expected = snapshots ? Event + " => /tmp/tu/bin/probe_helper[+0x202]\n" : Event + " =>  <0000562c3a152202>\n";
        await WaitForAsync(() => output.Text == expected);
        input.Add(" =>  <00007fa7711be24a>");   // no newline yet, and then nothing: the read blocks
        await Task.Delay(200);
        Assert.Equal(expected, output.Text);
        cts.Cancel();
        var result = await run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(PipelineEnd.Canceled, result.End);
        Assert.Equal(expected + (snapshots ? " => /usr/lib/x86_64-linux-gnu/libc.so.6[+0x124a]" : " =>  <00007fa7711be24a>"), output.Text);
        input.End();
    }
}
