namespace TraceUnwind.Testing;

/// <summary>
/// A non-seekable stream over bytes that hands out reads of chosen sizes (1 byte, 7 bytes,
/// random): how a pipe delivers perf's output. Reads complete synchronously.
/// </summary>
public sealed class ChunkedStream(byte[] data, Func<int> nextSize) : ReadOnlyTestStream
{
    private int _pos;
    public int Reads { get; private set; }
    public override int Read(Span<byte> buffer)
    {
        Reads++;
        int n = Math.Min(Math.Min(buffer.Length, Math.Max(1, nextSize())), data.Length - _pos);
        data.AsSpan(_pos, n).CopyTo(buffer);
        _pos += n;
        return n;
    }
}
