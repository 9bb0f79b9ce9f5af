using System.Buffers;
using ZstdSharp;

namespace TraceUnwind.Perf;

/// <summary>
/// The records inside PERF_RECORD_COMPRESSED (81) / COMPRESSED2 (83) (<c>perf record -z</c>).
/// The payloads of successive compressed records form one zstd stream (perf keeps one
/// <c>ZSTD_DStream</c> per session, util/zstd.c), so one decoder lives across records; a frame
/// may end inside a record or continue into the next one, and a decompressed record may
/// straddle two compressed records: the unparsed tail is carried over (perf's
/// <c>decomp_last_rem</c>).
///
/// ZstdSharp's <see cref="Decompressor.UnwrapStream"/> is the streaming call
/// (<c>ZSTD_decompressStream</c>): it never demands the end of a frame, which is what
/// <c>DecompressionStream(checkEndOfStream: false)</c> gives a Stream wrapper, without one.
/// </summary>
internal sealed class ZstdRecordStream : IDisposable
{
    // Decompressed bytes waiting to be framed. Records are at most 64 KiB, so a 64 KiB tail plus
    // room to decompress into always makes progress.
    private const int BufferSize = 256 << 10;

    private readonly Decompressor _decompressor = new();
    private readonly bool _bigEndian;
    private readonly byte[] _buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
    private int _length;

    public ZstdRecordStream(bool bigEndian) => _bigEndian = bigEndian;

    /// <summary>Bytes left over from a record that straddles into the next compressed record.</summary>
    public int Pending => _length;

    /// <summary>Payload bytes still to be skipped (AUXTRACE/TRACING_DATA payloads inside the stream).</summary>
    public long SkipRemaining;

    /// <summary>Called for each whole decompressed record; returns false to stop.</summary>
    public delegate bool RecordCallback(ReadOnlySpan<byte> record);

    public enum Result { Ok, BadData, BadRecordSize, Stopped }

    /// <summary>Decompresses <paramref name="payload"/> and hands every complete record to <paramref name="onRecord"/>.</summary>
    public Result Feed(ReadOnlySpan<byte> payload, RecordCallback onRecord, out int badSize)
    {
        badSize = 0;
        while (true)
        {
            var dest = _buffer.AsSpan(_length, BufferSize - _length);
            OperationStatus status;
            int consumed, written;
            try
            {
                status = _decompressor.UnwrapStream(payload, dest, out consumed, out written);
            }
            catch (ZstdException)
            {
                status = OperationStatus.InvalidData;
                consumed = written = 0;
            }
            if (status == OperationStatus.InvalidData)
            {
                Reset();
                return Result.BadData;
            }
            payload = payload[consumed..];
            _length += written;

            var r = Frame(onRecord, out badSize);
            if (r != Result.Ok) return r;

            // Done: the input was used up. DestinationTooSmall: more output is waiting (loop).
            // NeedMoreData: the frame continues in the next compressed record.
            if (status == OperationStatus.DestinationTooSmall) continue;
            if (payload.IsEmpty) return Result.Ok;
            if (consumed == 0 && written == 0) return Result.Ok; // no progress possible: wait for more input
        }
    }

    private Result Frame(RecordCallback onRecord, out int badSize)
    {
        badSize = 0;
        int pos = 0;
        var span = _buffer.AsSpan(0, _length);
        while (true)
        {
            if (SkipRemaining > 0)
            {
                int n = (int)Math.Min(SkipRemaining, span.Length - pos);
                pos += n;
                SkipRemaining -= n;
                if (SkipRemaining > 0) break;
            }
            if (span.Length - pos < 8) break;
            int size = _bigEndian
                ? System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(span[(pos + 6)..])
                : System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(span[(pos + 6)..]);
            if (size < 8) { badSize = size; Reset(); return Result.BadRecordSize; }
            if (span.Length - pos < size) break;
            var rec = span.Slice(pos, size);
            pos += size;
            if (!onRecord(rec)) { Compact(pos); return Result.Stopped; }
        }
        Compact(pos);
        return Result.Ok;
    }

    private void Compact(int pos)
    {
        if (pos == 0) return;
        _buffer.AsSpan(pos, _length - pos).CopyTo(_buffer);
        _length -= pos;
    }

    /// <summary>Drops buffered bytes and starts a new zstd stream (after damage).</summary>
    public void Reset()
    {
        _length = 0;
        SkipRemaining = 0;
        _decompressor.ResetStream();
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _decompressor.Dispose();
        ArrayPool<byte>.Shared.Return(_buffer);
    }
}
