namespace TraceUnwind.Cli;

/// <summary>Thrown when the reader of our output went away (EPIPE on <c>| head</c>): the run ends quietly.</summary>
public sealed class OutputClosedException(Exception inner) : IOException("output closed", inner);

/// <summary>
/// Wraps the output so a write error is told apart from an input error: any IOException while
/// writing becomes <see cref="OutputClosedException"/>.
/// </summary>
public sealed class OutputStream(Stream inner, bool ownsInner) : Stream
{
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        try { inner.Write(buffer); }
        catch (IOException e) { throw new OutputClosedException(e); }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try { await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false); }
        catch (IOException e) { throw new OutputClosedException(e); }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
        try { inner.Flush(); }
        catch (IOException e) { throw new OutputClosedException(e); }
    }

    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        try { await inner.FlushAsync(cancellationToken).ConfigureAwait(false); }
        catch (IOException e) { throw new OutputClosedException(e); }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && ownsInner)
        {
            try { inner.Dispose(); } catch (IOException) { }
        }
        base.Dispose(disposing);
    }

    /// <summary>Opens <paramref name="path"/> for writing, or stdout for null / <c>-</c>.</summary>
    public static OutputStream Open(string? path) =>
        path is null or "-"
            ? new OutputStream(CliConsole.OpenStdout(), ownsInner: false)
            : new OutputStream(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16), ownsInner: true);
}
