namespace TraceUnwind.Testing;

/// <summary>
/// Base of the tests' pipe-like inputs: forward-only, not seekable, not writable. A subclass says
/// only how bytes come (<see cref="Read(Span{byte})"/>); every other read form goes through it, and
/// async reads complete synchronously unless the subclass overrides them.
/// </summary>
public abstract class ReadOnlyTestStream : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public abstract override int Read(Span<byte> buffer);
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Read(buffer.Span));
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>
/// Base of the tests' pipe-like outputs: write-only, not seekable. A subclass says only what a write
/// does (<see cref="Write(ReadOnlySpan{byte})"/>); every other write form goes through it.
/// </summary>
public abstract class WriteOnlyTestStream : Stream
{
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public abstract override void Write(ReadOnlySpan<byte> buffer);
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
}

/// <summary>
/// An output whose reader went away (<c>| head</c> exited): it takes <paramref name="budget"/> bytes,
/// then every write that would go past them, and every flush once they are spent or a write was
/// refused, fails with an IOException as a closed pipe does (EPIPE).
/// </summary>
public sealed class BrokenPipeStream(int budget) : WriteOnlyTestStream
{
    private bool _refused;

    /// <summary>Bytes taken before the pipe "closed"; never more than the budget.</summary>
    public long Written { get; private set; }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (Written + buffer.Length > budget)
        {
            _refused = true;
            throw new IOException("Broken pipe");
        }
        Written += buffer.Length;
    }

    public override void Flush()
    {
        if (_refused || Written >= budget) throw new IOException("Broken pipe");
    }
}
