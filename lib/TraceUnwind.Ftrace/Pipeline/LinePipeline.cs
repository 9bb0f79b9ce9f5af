using System.Buffers;
using System.IO.Pipelines;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Ftrace.Pipeline;

/// <summary>How a <see cref="LinePipeline"/> run ended.</summary>
public enum PipelineEnd
{
    /// <summary>The input ended; every line was written.</summary>
    Completed,
    /// <summary>The cancellation token fired (Ctrl-C): what had been read was processed and flushed.</summary>
    Canceled,
    /// <summary>The output was closed by its reader (<c>| head</c>, EPIPE): the run stopped quietly.</summary>
    OutputClosed,
}

/// <summary>Knobs of a <see cref="LinePipeline"/>.</summary>
public sealed record LinePipelineOptions
{
    /// <summary>Lines longer than this pass through unparsed and are counted (<see cref="LineFramer.LongLineCode"/>).</summary>
    public int MaxLineLength { get; init; } = LineFramer.DefaultMaxLineLength;

    /// <summary>Output is flushed once this much is pending even while more input is buffered.</summary>
    public int FlushThreshold { get; init; } = 1 << 20;

    /// <summary>
    /// With a look-ahead scanner: while input keeps arriving, the last this-many bytes read are
    /// held back so every line is handled with at least that much of the input already scanned.
    /// </summary>
    public int LookaheadBytes { get; init; } = 256 * 1024;

    /// <summary>With a look-ahead scanner: how long the input may be idle before held-back lines are handled and flushed anyway.</summary>
    public TimeSpan IdleDelay { get; init; } = TimeSpan.FromMilliseconds(20);
}

/// <summary>
/// The streaming loop (Kestrel <c>Http1Connection</c>'s read / parse / <c>AdvanceTo</c> shape):
/// reads a <see cref="PipeReader"/>, lets a <see cref="LineFramer"/> cut and handle the lines,
/// writes to a <see cref="PipeWriter"/>. Output is flushed whenever the input has nothing more
/// buffered (the next read would wait), so a person watching <c>trace_pipe</c> sees each block as
/// soon as its last line arrived, and otherwise every <see cref="LinePipelineOptions.FlushThreshold"/>
/// bytes. Memory is bounded by the reader's buffer, one line (capped), the look-ahead window and
/// the flush threshold.
/// </summary>
public sealed class LinePipeline
{
    private readonly ILineHandler _handler;
    private readonly LineFramer _framer;
    private readonly ILookahead? _lookahead;
    private long _scannedTo;          // input offset up to which the look-ahead has seen complete lines
    private byte[] _lookaheadCopy = Array.Empty<byte>();
    private readonly LinePipelineOptions _options;

    /// <param name="handler">Gets every line; may replace it.</param>
    /// <param name="lookahead">
    /// Optional scanner that sees the complete lines of each newly read buffer before
    /// <paramref name="handler"/> does. With one, while input keeps arriving the last
    /// <see cref="LinePipelineOptions.LookaheadBytes"/> are held back, so every line is handled
    /// with at least that much input scanned ahead; after <see cref="LinePipelineOptions.IdleDelay"/>
    /// without input they are handled and flushed anyway.
    /// </param>
    public LinePipeline(ILineHandler handler, LinePipelineOptions? options = null, ErrorTally? tally = null,
        string? sourceName = null, ILookahead? lookahead = null)
    {
        _handler = handler;
        _options = options ?? new LinePipelineOptions();
        _framer = new LineFramer(handler, _options.MaxLineLength, tally, sourceName);
        _lookahead = lookahead;
    }

    /// <summary>The framer (line count, byte offset).</summary>
    public LineFramer Framer => _framer;

    /// <summary>Runs until the input ends, the token fires, or the output closes.</summary>
    /// <exception cref="IOException">Reading the input failed.</exception>
    public async Task<PipelineEnd> RunAsync(PipeReader input, PipeWriter? output, CancellationToken cancellationToken = default)
    {
        // Cancellation does not throw out of the read: the pending read returns IsCanceled with
        // whatever is buffered, which is then processed as the final piece and flushed.
        await using var registration = cancellationToken.Register(static s => ((PipeReader)s!).CancelPendingRead(), input);
        // With a look-ahead, lines near the end of what was read wait for more input, but only
        // while more keeps coming: an idle timer cancels the pending read to release them.
        int idleFired = 0;
        using var idleTimer = _lookahead is null ? null : TimeProvider.System.CreateTimer(
            _ => { Volatile.Write(ref idleFired, 1); input.CancelPendingRead(); }, null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        bool canceled = false, heldBack = false;
        long sinceFlush = 0;
        while (true)
        {
            var pending = input.ReadAsync(CancellationToken.None);
            if (!pending.IsCompleted)
            {
                if (heldBack)
                {
                    idleTimer!.Change(_options.IdleDelay, Timeout.InfiniteTimeSpan);
                }
                else
                {
                    // The input has nothing more for now: push out what is done.
                    _handler.OnIdle();
                    if (output is not null && sinceFlush > 0)
                    {
                        sinceFlush = 0;
                        if (!await TryFlushAsync(output).ConfigureAwait(false)) return PipelineEnd.OutputClosed;
                    }
                }
            }
            var result = await pending.ConfigureAwait(false);
            idleTimer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            var buffer = result.Buffer;
            bool idle = result.IsCanceled && Interlocked.Exchange(ref idleFired, 0) == 1 && !cancellationToken.IsCancellationRequested;
            // A pump that stops on the same token may complete the input instead: still a cancellation.
            canceled = (result.IsCanceled && !idle) || (result.IsCompleted && cancellationToken.IsCancellationRequested);
            bool final = result.IsCompleted || canceled;
            var toProcess = buffer;
            if (_lookahead is not null)
            {
                ScanAhead(buffer, final);
                if (!final && !idle && buffer.Length > _options.LookaheadBytes)
                    toProcess = buffer.Slice(0, buffer.Length - _options.LookaheadBytes);
                else if (!final && !idle)
                    toProcess = buffer.Slice(0, 0);
            }
            long before = _framer.ByteOffset;
            var consumed = _framer.Process(toProcess, final, output);
            // Counted on the input side: a writer may drop data silently once its reader is gone
            // (Pipe does), and only a flush tells.
            sinceFlush += _framer.ByteOffset - before;
            // Lines were held back (not just a partial last line) when the look-ahead cut the buffer.
            heldBack = toProcess.Length < buffer.Length;
            input.AdvanceTo(consumed, buffer.End);
            if (idle) _handler.OnIdle();
            if (output is not null && (final || idle || sinceFlush >= _options.FlushThreshold))
            {
                sinceFlush = 0;
                if (!await TryFlushAsync(output).ConfigureAwait(false)) return PipelineEnd.OutputClosed;
            }
            if (final) break;
        }
        _handler.OnIdle();
        return canceled ? PipelineEnd.Canceled : PipelineEnd.Completed;
    }

    /// <summary>Gives the look-ahead the complete lines that arrived since the last read.</summary>
    private void ScanAhead(in ReadOnlySequence<byte> buffer, bool final)
    {
        long skip = Math.Clamp(_scannedTo - _framer.ByteOffset, 0, buffer.Length);
        var fresh = buffer.Slice(skip);
        long length = fresh.Length;
        if (!final)
        {
            // Up to the last newline: find it from the end, segment by segment.
            length = 0;
            long segmentStart = 0;
            foreach (var m in fresh)
            {
                int nl = m.Span.LastIndexOf((byte)'\n');
                if (nl >= 0) length = segmentStart + nl + 1;
                segmentStart += m.Length;
            }
        }
        if (length == 0) return;
        var lines = fresh.Slice(0, length);
        long offset = _framer.ByteOffset + skip;
        if (lines.IsSingleSegment)
        {
            _lookahead!.Scan(lines.FirstSpan, offset);
        }
        else
        {
            // Rare (a run across pipe segments): one copy, bounded by what one read delivers.
            if (_lookaheadCopy.Length < length) _lookaheadCopy = new byte[Math.Max(length, _lookaheadCopy.Length * 2)];
            lines.CopyTo(_lookaheadCopy);
            _lookahead!.Scan(_lookaheadCopy.AsSpan(0, (int)length), offset);
        }
        _scannedTo = offset + length;
    }

    /// <summary>Flushes; false when the reader of the output has gone (completed pipe, EPIPE).</summary>
    private static async ValueTask<bool> TryFlushAsync(PipeWriter output)
    {
        try
        {
            var r = await output.FlushAsync().ConfigureAwait(false);
            return !r.IsCompleted;
        }
        catch (IOException)
        {
            return false;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }
}
