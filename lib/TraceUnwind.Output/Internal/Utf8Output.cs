using System.Buffers;
using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Text;
using TraceUnwind.Text;

namespace TraceUnwind.Output.Internal;

/// <summary>
/// The byte sink every text writer formats into: one pooled buffer in front of the output
/// <see cref="Stream"/>. Bytes reach the stream when the buffer fills (<see cref="GetSpan"/> drains
/// it first), on <see cref="DrainIfOver"/> (writers call it after each complete record, so memory
/// stays at one buffer whatever the input length), and on <see cref="Flush"/>, which also flushes
/// the stream so a pipe reader sees every complete record. Nothing here allocates after
/// construction unless a single request is larger than the buffer (then the buffer grows once).
/// Stream errors (a closed pipe: <see cref="IOException"/>) propagate to the caller.
/// </summary>
internal sealed class Utf8Output : IBufferWriter<byte>
{
    /// <summary>Records are written out once this many bytes are pending.</summary>
    public const int DefaultDrainThreshold = 32 * 1024;

    private readonly Stream _stream;
    private byte[] _buffer;
    private int _pos;

    public Utf8Output(Stream stream, int initialSize = 64 * 1024)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("the output stream is not writable", nameof(stream));
        _stream = stream;
        _buffer = ArrayPool<byte>.Shared.Rent(initialSize);
    }

    /// <summary>Bytes formatted but not yet written to the stream.</summary>
    public int Pending => _pos;

    /// <summary>Total bytes handed to the stream so far plus pending ones.</summary>
    public long BytesWritten { get; private set; }

    public void Advance(int count)
    {
        if ((uint)count > (uint)(_buffer.Length - _pos)) throw new ArgumentOutOfRangeException(nameof(count));
        _pos += count;
        BytesWritten += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_pos);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_pos);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Ensure(int sizeHint)
    {
        if (sizeHint < 1) sizeHint = 1;
        if (_buffer.Length - _pos < sizeHint) MakeRoom(sizeHint);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void MakeRoom(int sizeHint)
    {
        Drain();
        if (_buffer.Length >= sizeHint) return;
        // One request larger than the whole buffer (a huge symbol or path): grow to fit it.
        var bigger = ArrayPool<byte>.Shared.Rent(sizeHint);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }

    /// <summary>Hands pending bytes to the stream (no stream flush).</summary>
    public void Drain()
    {
        if (_pos == 0) return;
        _stream.Write(_buffer, 0, _pos);
        _pos = 0;
    }

    /// <summary>Drains when at least <paramref name="threshold"/> bytes are pending: call after a complete record.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void DrainIfOver(int threshold = DefaultDrainThreshold)
    {
        if (_pos >= threshold) Drain();
    }

    /// <summary>Everything pending to the stream, then <see cref="Stream.Flush()"/>.</summary>
    public void Flush()
    {
        Drain();
        _stream.Flush();
    }

    /// <summary>Returns the buffer to the pool; the object must not be used afterwards.</summary>
    public void Release()
    {
        var b = _buffer;
        _buffer = [];
        _pos = 0;
        if (b.Length > 0) ArrayPool<byte>.Shared.Return(b);
    }

    public void Write(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(GetSpan(bytes.Length));
        Advance(bytes.Length);
    }

    public void WriteByte(byte b)
    {
        GetSpan(1)[0] = b;
        Advance(1);
    }

    public void WriteRepeat(byte b, int count)
    {
        if (count <= 0) return;
        GetSpan(count)[..count].Fill(b);
        Advance(count);
    }

    /// <summary>A .NET string as UTF-8 (no allocation).</summary>
    public void WriteString(string? s)
    {
        if (string.IsNullOrEmpty(s)) return;
        int max = Encoding.UTF8.GetMaxByteCount(s.Length);
        int n = Encoding.UTF8.GetBytes(s, GetSpan(max));
        Advance(n);
    }

    /// <summary>Lower-case hex (the kernel's <c>%lx</c>).</summary>
    public void WriteHex(ulong value)
    {
        int n = Hex.Write(GetSpan(16), value);
        Advance(n);
    }

    /// <summary><c>0x</c> + lower-case hex.</summary>
    public void Write0xHex(ulong value)
    {
        var span = GetSpan(18);
        span[0] = (byte)'0';
        span[1] = (byte)'x';
        Advance(2 + Hex.Write(span[2..], value));
    }

    /// <summary>Hex right-aligned in <paramref name="width"/> columns with spaces (perf's <c>%16lx</c>).</summary>
    public void WriteHexPadded(ulong value, int width)
    {
        int digits = Hex.DigitCount(value);
        WriteRepeat((byte)' ', width - digits);
        WriteHex(value);
    }

    public void WriteDecimal(long value)
    {
        Utf8Formatter.TryFormat(value, GetSpan(20), out int n);
        Advance(n);
    }

    public void WriteDecimal(ulong value)
    {
        Utf8Formatter.TryFormat(value, GetSpan(20), out int n);
        Advance(n);
    }

    /// <summary><paramref name="value"/> right-aligned (positive width) or left-aligned (negative width), printf <c>%*d</c>.</summary>
    public void WriteDecimalAligned(long value, int width)
    {
        Span<byte> tmp = stackalloc byte[20];
        Utf8Formatter.TryFormat(value, tmp, out int n);
        if (width > n) WriteRepeat((byte)' ', width - n);
        Write(tmp[..n]);
        if (-width > n) WriteRepeat((byte)' ', -width - n);
    }

    /// <summary>Nanoseconds as <c>seconds.nnnnnnnnn</c>, right-aligned in <paramref name="width"/> columns.</summary>
    public void WriteSeconds(ulong nanoseconds, int width = 0)
    {
        Span<byte> tmp = stackalloc byte[32];
        int n = FormatSeconds(tmp, nanoseconds);
        if (width > n) WriteRepeat((byte)' ', width - n);
        Write(tmp[..n]);
    }

    /// <summary>
    /// <paramref name="value"/> right-aligned (positive width) or left-aligned (negative width) with spaces,
    /// printf <c>%*d</c>, into <paramref name="destination"/> (at least 20 bytes and |width|); returns the length.
    /// </summary>
    public static int FormatDecimalAligned(Span<byte> destination, long value, int width)
    {
        Span<byte> tmp = stackalloc byte[20];
        Utf8Formatter.TryFormat(value, tmp, out int n);
        int p = 0;
        if (width > n) { destination[..(width - n)].Fill((byte)' '); p = width - n; }
        tmp[..n].CopyTo(destination[p..]);
        p += n;
        if (-width > n) { destination.Slice(p, -width - n).Fill((byte)' '); p += -width - n; }
        return p;
    }

    /// <summary><see cref="FormatSeconds"/> right-aligned in <paramref name="width"/> columns; returns the length.</summary>
    public static int FormatSecondsAligned(Span<byte> destination, ulong nanoseconds, int width)
    {
        Span<byte> tmp = stackalloc byte[32];
        int n = FormatSeconds(tmp, nanoseconds);
        int p = 0;
        if (width > n) { destination[..(width - n)].Fill((byte)' '); p = width - n; }
        tmp[..n].CopyTo(destination[p..]);
        return p + n;
    }

    /// <summary>Formats <c>seconds.nnnnnnnnn</c> (9 decimals, the clock's full resolution); returns the length.</summary>
    public static int FormatSeconds(Span<byte> destination, ulong nanoseconds)
    {
        ulong sec = nanoseconds / 1_000_000_000UL, frac = nanoseconds % 1_000_000_000UL;
        Utf8Formatter.TryFormat(sec, destination, out int n);
        destination[n++] = (byte)'.';
        Utf8Formatter.TryFormat(frac, destination[n..], out int m, new StandardFormat('D', 9));
        return n + m;
    }
}
