using System.IO.Pipelines;

namespace TraceUnwind.Ftrace.Pipeline;

/// <summary>
/// Reads a stream into a <see cref="Pipe"/> on its own task and hands out the pipe's reader.
/// Unlike <c>PipeReader.Create(stream)</c>, whose pending read waits for the stream's read to
/// return, this reader's <see cref="PipeReader.CancelPendingRead"/> takes effect at once even
/// while a read of stdin or a FIFO blocks in the kernel: Ctrl-C can flush what was read, and a
/// look-ahead can release held-back lines when the input goes quiet. Reading also overlaps
/// with processing. The pipe's pause threshold bounds how far reading runs ahead.
/// </summary>
public static class StreamPump
{
    /// <summary>Starts pumping <paramref name="input"/>; the returned reader ends when the stream does (or fails with its exception).</summary>
    public static PipeReader Start(Stream input, int readSize = 1 << 18, CancellationToken cancellationToken = default)
    {
        var pipe = new Pipe(new PipeOptions(
            minimumSegmentSize: readSize,
            pauseWriterThreshold: 8L * readSize,
            resumeWriterThreshold: 4L * readSize,
            useSynchronizationContext: false));
        _ = PumpAsync(input, pipe.Writer, readSize, cancellationToken);
        return pipe.Reader;
    }

    private static async Task PumpAsync(Stream input, PipeWriter writer, int readSize, CancellationToken cancellationToken)
    {
        // Off the caller's thread: a blocking read (FileStream on a pipe) must not hold it.
        await Task.Yield();
        Exception? error = null;
        try
        {
            while (true)
            {
                var memory = writer.GetMemory(readSize);
                int n = await input.ReadAsync(memory, cancellationToken).ConfigureAwait(false);
                if (n == 0) break;
                writer.Advance(n);
                var flush = await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled) break;   // the consumer is done
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception ex)
        {
            error = ex;
        }
        await writer.CompleteAsync(error).ConfigureAwait(false);
    }
}
