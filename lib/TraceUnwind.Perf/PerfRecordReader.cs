using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using TraceUnwind.Buffers;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Perf;

/// <summary>
/// Reads a perf.data input (file mode or pipe mode, either byte order, <c>perf record -z</c>
/// compression) from a stream and delivers its records, decoded, to an
/// <see cref="IPerfRecordHandler"/> in time order (or file order). Memory stays bounded: the
/// data section is streamed (a non-seekable input through a <see cref="PipeReader"/>; a seekable one
/// with plain synchronous reads into 1 MiB chunks, framed in place), only the time-order queue holds
/// records, and nothing is allocated per record.
///
/// Inputs:
/// <list type="bullet">
/// <item>Pipe mode (<c>perf record -o -</c>; header size 16): attrs and features arrive as
/// HEADER_ATTR / HEADER_FEATURE records; the data runs to the end of the stream.</item>
/// <item>File mode on a seekable stream: header, attrs, ids and feature sections are read first
/// (seeking), then the data section is streamed.</item>
/// <item>File mode on a non-seekable stream (<c>cat perf.data | traceunwind ...</c>): perf puts ids
/// and attrs before the data, so they are read on the way; the feature sections come after the
/// data and are read at the end, so event names come from the attrs (<c>cpu-clock</c>;
/// tracepoints as <c>tracepoint:0xCONFIG</c>) and the architecture is unknown during the data.</item>
/// </list>
/// Errors: container damage (bad magic, a header that lies, sections outside the file) throws
/// <see cref="TraceFormatException"/> naming the input and byte offset. Damage inside a record
/// whose boundary can be trusted is counted in the <see cref="ErrorTally"/> and the record skipped.
/// A record whose size is below 8 or runs past the data section, or an input that ends inside a
/// record, loses the record boundary: it is counted, the records read so far are delivered
/// (the time-order queue is flushed) and reading stops there. (Resynchronizing at the next
/// FINISHED_ROUND is not attempted: a round marker is just 8 bytes <c>44 00 00 00 00 00 08 00</c>
/// and can occur inside sample data, so a guess could deliver garbage as records.)
/// </summary>
public sealed class PerfRecordReader : IDisposable
{
    private readonly Stream _input;
    private readonly PerfReadOptions _options;
    private IReaderCore? _core;
    private PipeReader? _pipe;
    private long _pipePos; // absolute offset of the PipeReader's next unconsumed byte
    private bool _ran;

    /// <param name="input">The perf.data bytes from offset 0 (a file, stdin, a pipe).</param>
    /// <param name="sourceName">Name used in messages (the path, or <c>stdin</c>).</param>
    /// <param name="options">Options; null for defaults.</param>
    /// <param name="tally">Where damaged and skipped input is counted; null for a fresh one.</param>
    public PerfRecordReader(Stream input, string sourceName, PerfReadOptions? options = null, ErrorTally? tally = null)
    {
        _input = input ?? throw new ArgumentNullException(nameof(input));
        _options = options ?? new PerfReadOptions();
        Tally = tally ?? new ErrorTally();
        Session = new PerfSession(sourceName);
    }

    /// <summary>What the input says about itself; filled in as it is read.</summary>
    public PerfSession Session { get; }
    public ErrorTally Tally { get; }
    /// <summary>Bytes of the data stream consumed so far (an absolute input offset).</summary>
    public long Position => _core?.Position ?? 0;
    /// <summary>SAMPLE records delivered so far.</summary>
    public long SamplesDelivered => _core?.SamplesDelivered ?? 0;

    /// <summary>Reads the whole input synchronously.</summary>
    /// <exception cref="TraceFormatException">The container is damaged (not perf.data, a header that lies).</exception>
    public void Run(IPerfRecordHandler handler) => RunAsync(handler, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Reads the input to its end (or cancellation), delivering records to <paramref name="handler"/>.</summary>
    /// <exception cref="TraceFormatException">The container is damaged (not perf.data, a header that lies).</exception>
    public async Task RunAsync(IPerfRecordHandler handler, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (_ran) throw new InvalidOperationException("a PerfRecordReader reads its input once");
        _ran = true;
        bool seekable = _input.CanSeek;
        long fileLength = seekable ? _input.Length : -1;
        long start = seekable ? _input.Position : 0;
        if (seekable && start != 0) fileLength -= start; // offsets count from where the stream stands

        // Magic and header size (16 bytes), and the rest of a file-mode header, without consuming them.
        byte[] head = await PeekStartAsync(ReaderCore<LittleEndian>.FileHeaderSize, seekable, start, cancellationToken).ConfigureAwait(false);
        CheckMagic(head);
        bool bigEndian = head[0] == (byte)'2';
        Session.IsBigEndian = bigEndian;
        _core = bigEndian
            ? new ReaderCore<BigEndian>(Session, _options, Tally, handler)
            : new ReaderCore<LittleEndian>(Session, _options, Tally, handler);

        ulong headerSize = bigEndian
            ? System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(head.AsSpan(8))
            : System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(head.AsSpan(8));
        try
        {
            if (headerSize == ReaderCore<LittleEndian>.PipeHeaderSize)
            {
                Session.IsPipeMode = true;
                Session.DataOffset = 16;
                Session.DataSize = -1;
                Session.FeaturesComplete = false;
                if (seekable)
                {
                    _core.BeginData(16, -1);
                    RunDataSeekable(start + 16, -1, cancellationToken);
                }
                else
                {
                    await StartDataAsync(seekable, start, 16, cancellationToken).ConfigureAwait(false);
                    _core.BeginData(16, -1);
                    await RunDataAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            else
            {
                await RunFileAsync(head, seekable, start, fileLength, cancellationToken).ConfigureAwait(false);
            }
            _core.Finish();
        }
        catch (TraceFormatException e) when (e.Position.Source is null)
        {
            throw e.WithSource(Session.SourceName);
        }
        finally
        {
            if (_pipe is not null) await _pipe.CompleteAsync().ConfigureAwait(false);
            _core.Dispose(); // pooled buffers go back; Session stays readable
        }
    }

    private void CheckMagic(byte[] head)
    {
        var h = head.AsSpan();
        if (h.Length >= 8 && (h[..8].SequenceEqual("PERFILE2"u8) || h[..8].SequenceEqual("2ELIFREP"u8)))
        {
            if (h.Length < 16) throw new TraceFormatException($"not a perf.data file: the input ends after {h.Length} bytes, inside the header", new InputPosition(Session.SourceName, h.Length));
            return;
        }
        if (h.Length >= 8 && h[..8].SequenceEqual("PERFFILE"u8))
            throw new TraceFormatException("perf.data version 1 (magic \"PERFFILE\") is not supported: convert it with a newer perf", new InputPosition(Session.SourceName, 0));
        throw new TraceFormatException($"not a perf.data file: {Describe(h)}", new InputPosition(Session.SourceName, 0));
    }

    /// <summary>"starts with 7f 45 4c 46 ... (".ELF...")" for error messages.</summary>
    internal static string Describe(ReadOnlySpan<byte> head)
    {
        if (head.IsEmpty) return "the input is empty";
        var n = head[..Math.Min(8, head.Length)];
        var hex = new StringBuilder();
        foreach (byte b in n) hex.Append(hex.Length == 0 ? "" : " ").Append(b.ToString("x2"));
        var text = new StringBuilder();
        foreach (byte b in n) text.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
        return $"starts with {hex} (\"{text}\"), not PERFILE2";
    }

    private async Task RunFileAsync(byte[] header, bool seekable, long start, long fileLength, CancellationToken ct)
    {
        var core = _core!;
        // Header: 104 bytes (72 before the feature bitmap existed).
        core.ParseFileHeader(header, fileLength);
        var sec = core.Sections;

        // Attrs and their id arrays. perf writes the ids right after the header, then the attrs,
        // then the data; on a non-seekable input everything before the data is read in one go.
        ReadOnlyMemory<byte> region = default;
        long regionStart = sec.HeaderSize;
        if (!seekable)
        {
            const long MaxRegion = 64L << 20;
            long regionLength = sec.DataOffset - regionStart;
            if (sec.AttrsOffset < regionStart || sec.AttrsOffset + sec.AttrsSize > sec.DataOffset)
                throw new TraceFormatException(
                    $"attrs section 0x{sec.AttrsOffset:x}+0x{sec.AttrsSize:x} is not between the header and the data section at 0x{sec.DataOffset:x}: this file needs a seekable input (a file, not a pipe)",
                    new InputPosition(Session.SourceName, 24));
            if (regionLength > MaxRegion)
                throw new TraceFormatException(
                    $"the data section starts at 0x{sec.DataOffset:x}, {regionLength} bytes after the header: too far to read ahead from a non-seekable input; give the file itself",
                    new InputPosition(Session.SourceName, 40));
            region = await ReadAtAsync(regionStart, (int)regionLength, seekable, start, ct).ConfigureAwait(false);
            if (region.Length < regionLength)
                throw new TraceFormatException($"input ends at 0x{regionStart + region.Length:x}, before the data section at 0x{sec.DataOffset:x}",
                    new InputPosition(Session.SourceName, regionStart + region.Length));
        }

        ReadOnlyMemory<byte> ReadIds(long offset, long size)
        {
            if (seekable)
            {
                if (size > int.MaxValue || (fileLength >= 0 && (size > fileLength || offset > fileLength - size)))
                    throw new TraceFormatException($"ids section 0x{offset:x}+0x{size:x} runs past end of file (size 0x{fileLength:x})", new InputPosition(Session.SourceName, offset));
                return ReadAtSync(offset, (int)size, start);
            }
            if (offset < regionStart || size > region.Length || offset - regionStart > region.Length - size)
                throw new TraceFormatException(
                    $"ids section 0x{offset:x}+0x{size:x} is not between the header and the data section at 0x{sec.DataOffset:x}: this file needs a seekable input (a file, not a pipe)",
                    new InputPosition(Session.SourceName, offset));
            return region.Slice((int)(offset - regionStart), (int)size);
        }

        ReadOnlyMemory<byte> attrs = seekable
            ? await ReadAtAsync(sec.AttrsOffset, (int)sec.AttrsSize, true, start, ct).ConfigureAwait(false)
            : region.Slice((int)(sec.AttrsOffset - regionStart), (int)sec.AttrsSize);
        core.ParseAttrs(attrs.Span, sec.AttrsOffset, ReadIds);
        if (Session.Events.Count == 0)
            Tally.Add("perf.attr.none", new InputPosition(Session.SourceName, 24), "the file has no attrs: no sample can be decoded", TallySeverity.Notice);

        long featOffset = sec.DataSize < 0 ? -1 : sec.DataOffset + sec.DataSize;
        if (seekable && featOffset >= 0)
        {
            await ReadFeaturesSeekableAsync(featOffset, fileLength, start, ct).ConfigureAwait(false);
            Session.FeaturesComplete = true;
        }

        if (seekable)
        {
            core.BeginData(sec.DataOffset, sec.DataSize);
            RunDataSeekable(start + sec.DataOffset, sec.DataSize, ct);
        }
        else
        {
            await StartDataAsync(seekable, start, sec.DataOffset, ct).ConfigureAwait(false);
            core.BeginData(sec.DataOffset, sec.DataSize);
            await RunDataAsync(ct).ConfigureAwait(false);
        }

        if (!seekable && !core.Stopped && featOffset >= 0)
        {
            await ReadFeaturesStreamingAsync(featOffset, ct).ConfigureAwait(false);
            Session.FeaturesComplete = true;
        }
    }

    private async Task ReadFeaturesSeekableAsync(long tableOffset, long fileLength, long start, CancellationToken ct)
    {
        int nfeat = 0;
        for (int i = 0; i < 256; i++) if (Session.HasFeatureBit(i)) nfeat++;
        if (nfeat == 0) return;
        byte[] table = await ReadAtAsync(tableOffset, nfeat * 16, true, start, ct).ConfigureAwait(false);
        var list = new List<(PerfFeature Feature, long Offset, long Size)>();
        _core!.ParseFeatureTable(table, tableOffset, list, fileLength);
        foreach (var (f, off, size) in list)
        {
            if (size > PerfSession.MaxRawFeatureBytes)
            {
                Tally.Add("perf.feature.too-large", new InputPosition(Session.SourceName, off), $"feature {f} of {size} bytes skipped", TallySeverity.Notice);
                continue;
            }
            byte[] payload = await ReadAtAsync(off, (int)size, true, start, ct).ConfigureAwait(false);
            _core.ParseFeature(f, payload, off);
        }
    }

    private async Task ReadFeaturesStreamingAsync(long tableOffset, CancellationToken ct)
    {
        int nfeat = 0;
        for (int i = 0; i < 256; i++) if (Session.HasFeatureBit(i)) nfeat++;
        if (nfeat == 0) return;
        byte[] table = await ReadAtAsync(tableOffset, nfeat * 16, false, 0, ct).ConfigureAwait(false);
        var list = new List<(PerfFeature Feature, long Offset, long Size)>();
        _core!.ParseFeatureTable(table, tableOffset, list, -1);
        list.Sort((a, b) => a.Offset.CompareTo(b.Offset));
        foreach (var (f, off, size) in list)
        {
            if (off < _pipePos)
            {
                Tally.Add("perf.feature.unreachable", new InputPosition(Session.SourceName, off),
                    $"feature {f} at 0x{off:x} lies before the read position 0x{_pipePos:x} of a non-seekable input: skipped", TallySeverity.Notice);
                continue;
            }
            if (size > PerfSession.MaxRawFeatureBytes)
            {
                Tally.Add("perf.feature.too-large", new InputPosition(Session.SourceName, off), $"feature {f} of {size} bytes skipped", TallySeverity.Notice);
                continue;
            }
            byte[] payload = await ReadAtAsync(off, (int)size, false, 0, ct).ConfigureAwait(false);
            if (payload.Length < size)
            {
                Tally.Add("perf.feature.damaged", new InputPosition(Session.SourceName, off + payload.Length), $"input ends inside feature {f}");
                return;
            }
            _core.ParseFeature(f, payload, off);
        }
    }

    // ---------------------------------------------------------------- I/O

    private void EnsurePipe(bool seekable, long start, long offset)
    {
        if (_pipe is null)
        {
            if (seekable) _input.Seek(start + offset, SeekOrigin.Begin);
            _pipe = PipeReader.Create(_input, new StreamPipeReaderOptions(pool: BlockCache.Pool.Instance,
                bufferSize: Math.Max(4096, _options.BufferSize), minimumReadSize: Math.Max(1024, _options.BufferSize / 4), leaveOpen: true));
            _pipePos = seekable ? offset : 0;
        }
        if (_pipePos != offset)
            throw new InvalidOperationException($"pipe at 0x{_pipePos:x}, wanted 0x{offset:x}");
    }

    /// <summary>Positions the pipe at <paramref name="offset"/> (seeking once, or skipping forward).</summary>
    private async Task StartDataAsync(bool seekable, long start, long offset, CancellationToken ct)
    {
        if (_pipe is null) { EnsurePipe(seekable, start, offset); return; }
        if (offset < _pipePos) throw new InvalidOperationException("cannot read backwards from a non-seekable input");
        await SkipAsync(offset - _pipePos, ct).ConfigureAwait(false);
    }

    private async Task SkipAsync(long skip, CancellationToken ct)
    {
        while (skip > 0)
        {
            var r = await _pipe!.ReadAsync(ct).ConfigureAwait(false);
            long n = Math.Min(skip, r.Buffer.Length);
            _pipe.AdvanceTo(r.Buffer.GetPosition(n));
            skip -= n;
            _pipePos += n;
            if (n == 0 && r.IsCompleted) return;
        }
    }

    /// <summary>Up to <paramref name="count"/> bytes from offset 0, not consumed.</summary>
    private async ValueTask<byte[]> PeekStartAsync(int count, bool seekable, long start, CancellationToken ct)
    {
        if (seekable) return ReadAtSync(0, count, start);
        EnsurePipe(false, start, 0);
        var result = await _pipe!.ReadAtLeastAsync(count, ct).ConfigureAwait(false);
        var bytes = result.Buffer.Slice(0, Math.Min(count, result.Buffer.Length)).ToArray();
        _pipe.AdvanceTo(result.Buffer.Start);
        return bytes;
    }

    /// <summary>
    /// Reads up to <paramref name="count"/> bytes at <paramref name="offset"/> (fewer at the end of
    /// the input). Seekable inputs seek; others read forward through the pipe (skipping to the offset).
    /// </summary>
    private async ValueTask<byte[]> ReadAtAsync(long offset, int count, bool seekable, long start, CancellationToken ct)
    {
        if (seekable && _pipe is null) return ReadAtSync(offset, count, start);
        EnsurePipe(false, start, _pipePos);
        if (offset < _pipePos) throw new InvalidOperationException("cannot read backwards from a non-seekable input");
        await SkipAsync(offset - _pipePos, ct).ConfigureAwait(false);
        if (_pipePos < offset) return [];
        var result = await _pipe!.ReadAtLeastAsync(count, ct).ConfigureAwait(false);
        int have = (int)Math.Min(count, result.Buffer.Length);
        var bytes = result.Buffer.Slice(0, have).ToArray();
        _pipe.AdvanceTo(result.Buffer.GetPosition(have));
        _pipePos += have;
        return bytes;
    }

    private byte[] ReadAtSync(long offset, int count, long start)
    {
        _input.Seek(start + offset, SeekOrigin.Begin);
        var bytes = new byte[count];
        int n = _input.ReadAtLeast(bytes, count, throwOnEndOfStream: false);
        return n == count ? bytes : bytes[..n];
    }

    /// <summary>
    /// The data section of a seekable input: read straight into 1 MiB chunks (synchronous reads, no
    /// pipe), framed in place; the time-order queue keeps its records in the chunks instead of copying
    /// them (<see cref="RoundSorter.QueueInPlace"/>). A record cut by a chunk's end moves to the start of the
    /// next chunk. <paramref name="dataSize"/> -1: to the end of the input.
    /// </summary>
    private void RunDataSeekable(long at, long dataSize, CancellationToken ct)
    {
        var core = _core!;
        _input.Seek(at, SeekOrigin.Begin);
        long left = dataSize < 0 ? long.MaxValue : dataSize;
        byte[] chunk = core.AcquireReadChunk(out int index);
        int have = 0;
        try
        {
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                bool end = false;
                while (have < chunk.Length && left > 0)
                {
                    int n = _input.Read(chunk, have, (int)Math.Min(chunk.Length - have, left));
                    if (n <= 0) { end = true; break; }
                    have += n;
                    left -= n;
                }
                if (!core.ProcessChunk(chunk, index, have, end || left == 0, out int consumed)) return;
                var next = core.AcquireReadChunk(out int nextIndex);
                chunk.AsSpan(consumed, have - consumed).CopyTo(next);
                have -= consumed;
                core.ReleaseReadChunk(index);
                (chunk, index) = (next, nextIndex);
            }
        }
        finally
        {
            core.ReleaseReadChunk(index);
        }
    }

    private async Task RunDataAsync(CancellationToken ct)
    {
        var core = _core!;
        var pipe = _pipe!;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (!pipe.TryRead(out var result))
            {
                if (!_input.CanSeek) core.OnIdle(); // a pipe went quiet: let the sinks write out
                result = await pipe.ReadAsync(ct).ConfigureAwait(false);
            }
            var buffer = result.Buffer;
            long before = buffer.Length;
            bool more = core.ProcessSequence(ref buffer, result.IsCompleted);
            _pipePos += before - buffer.Length;
            if (more) pipe.AdvanceTo(buffer.Start, result.Buffer.End);
            else
            {
                pipe.AdvanceTo(buffer.Start);
                return;
            }
        }
    }

    public void Dispose() => _core?.Dispose();
}
