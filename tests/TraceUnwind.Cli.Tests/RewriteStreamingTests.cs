using System.IO.Pipes;
using System.Text;
using TraceUnwind.Testing;
using static TraceUnwind.Cli.Tests.FtracePerfCapture;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// <c>traceunwind rewrite</c> reading a real pipe (an anonymous pipe, as <c>cat trace_pipe | traceunwind rewrite</c>
/// gives it), run through the command: a complete block comes out while the input is still open, and the whole
/// output equals the output for the same bytes read from a file.
/// </summary>
public sealed class RewriteStreamingTests
{
    /// <summary>Collects what is written and lets a test wait for some text to appear.</summary>
    private sealed class WatchedStream : WriteOnlyTestStream
    {
        private readonly MemoryStream _data = new();
        private readonly object _gate = new();
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            lock (_gate)
            {
                _data.Write(buffer);
                Monitor.PulseAll(_gate);
            }
        }

        public string Text
        {
            get { lock (_gate) return Encoding.UTF8.GetString(_data.ToArray()); }
        }

        /// <summary>Waits until the output holds <paramref name="expected"/> as its start; false on timeout.</summary>
        public bool WaitFor(string expected, TimeSpan timeout)
        {
            var until = DateTime.UtcNow + timeout;
            lock (_gate)
            {
                while (!Encoding.UTF8.GetString(_data.ToArray()).StartsWith(expected, StringComparison.Ordinal))
                {
                    var left = until - DateTime.UtcNow;
                    if (left <= TimeSpan.Zero || !Monitor.Wait(_gate, left)) return false;
                }
                return true;
            }
        }
    }

    [Theory]
    [InlineData("--perf")]
    [InlineData("--maps")]
    public async Task ABlockComesOutBeforeTheInputEnds(string source)
    {
        var raw = Cli.Lines(CaptureText("perfclock", "raw.txt"));
        string maps = Path.Combine(Path.GetTempPath(), $"tu-e2e-stream-{Guid.NewGuid():N}.maps");
        File.WriteAllText(maps, SnapshotsAsMapsOption("perfclock"));
        try
        {
            string[] args = source == "--perf"
                ? ["rewrite", "--perf", CapturePath("perfclock", "perf.data"), "--clock-offset", "0"]
                : ["rewrite", "--maps", maps];
            var whole = Cli.Run([.. args, CapturePath("perfclock", "raw.txt")]);
            Assert.Equal(0, whole.Code);
            var expected = Cli.Lines(whole.Stdout);

            // The first lines up to and including the fourth block's last frame: the rewritten frames must appear
            // while the writer end is still open.
            var blocks = Blocks(raw);
            int upTo = blocks[3].FrameLines[^1] + 1;
            string head = string.Concat(raw.Take(upTo).Select(l => l + "\n"));
            string rewrittenHead = string.Concat(expected.Take(upTo).Select(l => l + "\n"));
            Assert.NotEqual(head, rewrittenHead);   // the block holds rewritten frames

            using var server = new AnonymousPipeServerStream(PipeDirection.Out);
            using var client = new AnonymousPipeClientStream(PipeDirection.In, server.ClientSafePipeHandle);
            var output = new WatchedStream();
            var run = Task.Run(() => Cli.RunInto(client, output, args));

            server.Write(Encoding.UTF8.GetBytes(head));
            server.Flush();
            Assert.True(output.WaitFor(rewrittenHead, TimeSpan.FromSeconds(20)), $"after 20 s the output holds only:\n{output.Text}");
            Assert.False(run.IsCompleted);

            server.Write(Encoding.UTF8.GetBytes(string.Concat(raw.Skip(upTo).Select(l => l + "\n"))));
            server.Dispose();   // end of input
            var (code, stderr) = await run.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal("", stderr);
            Assert.Equal(0, code);
            Assert.Equal(whole.Stdout, output.Text);
        }
        finally
        {
            File.Delete(maps);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CancelEndsTheRunWithWhatWasRead(bool beforeFirstBytes)
    {
        // Ctrl-C (the command's token) on a pipe that stays open: exit 130 at once, every complete line read
        // so far written out, whether or not any input had come.
        var raw = Cli.Lines(CaptureText("perfclock", "raw.txt"));
        string head = beforeFirstBytes ? "" : string.Concat(raw.Take(10).Select(l => l + "\n"));
        var expected = Cli.Lines(Cli.Run("rewrite", CapturePath("perfclock", "raw.txt"), "--perf", CapturePath("perfclock", "perf.data")).Stdout);
        var server = new AnonymousPipeServerStream(PipeDirection.Out);
        var client = new AnonymousPipeClientStream(PipeDirection.In, server.ClientSafePipeHandle);
        var output = new WatchedStream();
        using var cts = new CancellationTokenSource();
        var stderr = new StringWriter();
        var run = Commands.RewriteCommand.RunAsync("-", [], CapturePath("perfclock", "perf.data"), 0, false, false, null, null,
            Ftrace.Pipeline.LineFramer.DefaultMaxLineLength, false, "/proc", client, output, stderr, cts.Token);
        if (head.Length > 0)
        {
            server.Write(Encoding.UTF8.GetBytes(head));
            server.Flush();
            Assert.True(output.WaitFor(string.Concat(expected.Take(10).Select(l => l + "\n")), TimeSpan.FromSeconds(20)), output.Text);
        }
        else
        {
            await Task.Delay(200);
        }
        Assert.False(run.IsCompleted);
        cts.Cancel();
        int code;
        try
        {
            code = await run.WaitAsync(TimeSpan.FromSeconds(10));
        }
        finally
        {
            // The writer first: a read still blocked on the pipe (the sniff left behind by the cancel) sees EOF.
            server.Dispose();
            client.Dispose();
        }
        Assert.Equal(130, code);
        Assert.Equal("", stderr.ToString());
        Assert.Equal(string.Concat(expected.Take(head.Length > 0 ? 10 : 0).Select(l => l + "\n")), output.Text);
    }
}
