using System.IO.Pipelines;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Ftrace.Pipeline;

namespace TraceUnwind.Ftrace.Rewrite;

/// <summary>The outcome of <see cref="FtraceRewriter.RunAsync"/>.</summary>
public sealed record RewriteResult(PipelineEnd End, long Lines, RewriteStatistics Statistics, long ExecsScanned);

/// <summary>
/// <c>traceunwind rewrite</c> as a library call: streams ftrace text (trace, trace_pipe,
/// trace-cmd report) from a stream to a stream, rewriting user frames with
/// <see cref="UserStackRewriter"/>, everything else byte-identical.
/// <para>
/// Snapshots (<see cref="MapsSnapshots"/>) choose by the process's next exec, which may come
/// later in the trace than the event. A seekable input is therefore read twice: once for the
/// <c>sched_process_exec</c> lines and the last timestamp (the time untimed snapshots count
/// as), then for the rewrite. A pipe is read once; each newly read chunk is scanned for execs
/// before its lines are rewritten, so execs are known as far as the input has arrived (with
/// <c>cat trace | traceunwind</c> that is the pipe's 64 KiB; live, the exec has usually not
/// happened yet either, and untimed snapshots count as taken at +∞).
/// </para>
/// </summary>
public static class FtraceRewriter
{
    /// <summary>Bytes read from the end of a file to find its last timestamp.</summary>
    private const int TailBytes = 64 * 1024;

    /// <summary>Rewrites <paramref name="input"/> into <paramref name="output"/>. Neither stream is closed.</summary>
    /// <exception cref="IOException">Reading the input failed.</exception>
    public static async Task<RewriteResult> RunAsync(Stream input, Stream output, RewriteOptions options, ErrorTally tally,
        string sourceName, CancellationToken cancellationToken = default)
    {
        long execs = 0;
        var pipelineOptions = new LinePipelineOptions { MaxLineLength = options.MaxLineLength, FlushThreshold = options.FlushThreshold };
        bool twoPass = options.Maps is MapsSnapshots && input.CanSeek;
        if (twoPass)
        {
            var snaps = (MapsSnapshots)options.Maps!;
            long start = input.Position;
            execs = await ExecScanner.ScanAsync(input, snaps, options.MaxLineLength, cancellationToken).ConfigureAwait(false);
            if (FindLastTimestamp(input, start) is { } last) snaps.SetEndOfTrace(last);
            input.Position = start;
        }

        var rewriter = new UserStackRewriter(options);
        var lookahead = !twoPass && options.Maps is MapsSnapshots s ? new ExecScanner(s) : null;
        var pipeline = new LinePipeline(rewriter, pipelineOptions, tally, sourceName, lookahead);
        var reader = StreamPump.Start(input, cancellationToken: cancellationToken);
        var writer = PipeWriter.Create(output, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
        PipelineEnd result;
        try
        {
            result = await pipeline.RunAsync(reader, writer, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
        try
        {
            await writer.CompleteAsync().ConfigureAwait(false);
        }
        catch (IOException)
        {
            result = PipelineEnd.OutputClosed;
        }
        return new RewriteResult(result, pipeline.Framer.LinesSeen, rewriter.Statistics, execs + (lookahead?.ExecsSeen ?? 0));
    }

    /// <summary>The timestamp of the last event line in the final 64 KiB of a seekable stream.</summary>
    public static TraceTimestamp? FindLastTimestamp(Stream input, long start)
    {
        long len = input.Length;
        long from = Math.Max(start, len - TailBytes);
        var buf = new byte[len - from];
        input.Position = from;
        input.ReadExactly(buf);
        var text = buf.AsSpan();
        while (!text.IsEmpty)
        {
            int nl = text[..^1].LastIndexOf((byte)'\n');
            var line = nl < 0 ? text : text[(nl + 1)..];
            if (!line.IsEmpty && line[^1] == (byte)'\n') line = line[..^1];
            if (!line.IsEmpty && line[^1] == (byte)'\r') line = line[..^1];
            if (EventLineParser.TryParse(line, out var ev) && ev.Timestamp.IsKnown) return ev.Timestamp;
            if (nl < 0) break;
            text = text[..(nl + 1)];
            if (text.Length == 1) break;
        }
        return null;
    }
}
