using System.Buffers;
using TraceUnwind.Buffers;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Perf;

/// <summary>The byte-order-specialized part of <see cref="PerfRecordReader"/>, seen without its type argument.</summary>
internal interface IReaderCore : IDisposable
{
    bool IsPipe { get; }
    long Position { get; }
    long SamplesDelivered { get; }
    bool Stopped { get; }
    void ParseFileHeader(ReadOnlySpan<byte> header, long fileLength);
    PerfFileSections Sections { get; }
    void ParseAttrs(ReadOnlySpan<byte> attrs, long attrsOffset, Func<long, long, ReadOnlyMemory<byte>> readIds);
    void ParseFeatureTable(ReadOnlySpan<byte> table, long tableOffset, List<(PerfFeature Feature, long Offset, long Size)> into, long fileLength);
    void ParseFeature(PerfFeature feature, ReadOnlySpan<byte> payload, long offset);
    void BeginData(long offset, long size);
    bool ProcessSequence(ref ReadOnlySequence<byte> buffer, bool isCompleted);
    byte[] AcquireReadChunk(out int index);
    void ReleaseReadChunk(int index);
    bool ProcessChunk(byte[] chunk, int index, int length, bool isCompleted, out int consumed);
    void Finish();
    void OnIdle();
}

/// <summary>Where a file-mode header says things are.</summary>
internal readonly record struct PerfFileSections(long HeaderSize, long AttrSize, long AttrsOffset, long AttrsSize,
    long DataOffset, long DataSize);

/// <summary>
/// Frames, decodes and orders the records of one input. The driver (<see cref="PerfRecordReader"/>)
/// owns the I/O and hands over bytes; everything here is synchronous and allocation-free per record.
/// </summary>
internal sealed class ReaderCore<TOrder> : IReaderCore where TOrder : struct, IByteOrder
{
    /// <summary>File headers: 104 bytes, or 72 for perf before the feature bitmap (perf accepts both).</summary>
    public const int FileHeaderSize = 104, OldFileHeaderSize = 72, PipeHeaderSize = 16;
    // Caps on what the header can make us read before the data (a damaged header must not size a
    // big allocation): perf has a few attrs of <= 4 KiB each and a few ids per CPU and thread.
    private const int MaxAttrs = 1 << 16;
    private const long MaxAttrsBytes = 16 << 20;
    private const long MaxIdsBytes = 64 << 20;
    private const int MaxRecord = 65535;
    private const long ProgressEvery = 4L << 20;

    private readonly PerfSession _session;
    private readonly PerfReadOptions _options;
    private readonly ErrorTally _tally;
    private readonly IPerfRecordHandler _handler;
    private readonly IDeferredSampleStage? _deferredStage;
    private readonly RecordDecoder<TOrder> _decoder;
    private readonly RoundSorter? _sorter;
    private readonly RoundSorter.Deliver _deliver;
    private readonly ZstdRecordStream.RecordCallback _onDecompressed;
    private readonly byte[] _scratch = new byte[MaxRecord + 1];
    private ZstdRecordStream? _zstd;
    private long _zstdRecordOffset;
    // Seekable file mode: the chunk being framed, whose records the sorter may queue without a copy.
    private byte[]? _inPlace;
    private int _inPlaceIndex;
    private byte[][]? _ownChunks; // read chunks when there is no sorter (file order): two, alternating
    private int _ownNext;

    private long _pos;            // absolute offset of the next byte of the data stream
    private long _dataRemaining;  // file mode: bytes of the data section left; pipe mode: -1
    private long _skip;           // payload bytes to skip (AUXTRACE, HEADER_TRACING_DATA)
    private long _nextProgress;
    private bool _stopped;

    public ReaderCore(PerfSession session, PerfReadOptions options, ErrorTally tally, IPerfRecordHandler handler)
    {
        _session = session;
        _options = options;
        _tally = tally;
        _handler = handler;
        _deferredStage = handler as IDeferredSampleStage;
        _decoder = new RecordDecoder<TOrder>(session);
        if (options.Order == PerfRecordOrder.Time) _sorter = new RoundSorter(options.MaxQueuedBytes);
        _deliver = Deliver;
        _onDecompressed = OnDecompressed;
    }

    public bool IsPipe => _session.IsPipeMode;
    public long Position => _pos;
    public long SamplesDelivered { get; private set; }
    public bool Stopped => _stopped;
    public PerfFileSections Sections { get; private set; }

    private InputPosition At(long offset) => new(_session.SourceName, offset);

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Fail(string message, long offset) => throw new TraceFormatException(message, At(offset));

    // ---------------------------------------------------------------- file header, attrs, features

    /// <summary>
    /// <c>struct perf_file_header { u64 magic; u64 size; u64 attr_size; section attrs, data,
    /// event_types; u64 adds_features[4]; }</c>, checked against the file length when known
    /// (sums widened: <c>size &gt; len || offset &gt; len - size</c> cannot wrap).
    /// </summary>
    private long _fileLength = -1;

    public void ParseFileHeader(ReadOnlySpan<byte> h, long fileLength)
    {
        _fileLength = fileLength;
        ulong headerSize = TOrder.UInt64(h[8..]);
        if (headerSize != FileHeaderSize && headerSize != OldFileHeaderSize)
            Fail($"perf.data header size {headerSize}: neither {FileHeaderSize} (file mode) nor {PipeHeaderSize} (pipe mode)", 8);
        if (h.Length < (int)headerSize)
            Fail($"file ends inside the {headerSize}-byte perf.data header (only {h.Length} bytes)", h.Length);
        ulong attrSize = TOrder.UInt64(h[16..]);
        ulong attrsOff = TOrder.UInt64(h[24..]), attrsSize = TOrder.UInt64(h[32..]);
        ulong dataOff = TOrder.UInt64(h[40..]), dataSize = TOrder.UInt64(h[48..]);
        if (headerSize == FileHeaderSize)
            for (int i = 0; i < 4; i++) _session.FeatureBitmap[i] = TOrder.UInt64(h[(72 + 8 * i)..]);

        if (attrSize < PerfEventAttr.SizeVer0 + 16 || attrSize > PerfEventAttr.MaxSize + 16)
            Fail($"attr_size {attrSize} in the header is not a perf_event_attr plus ids section ({PerfEventAttr.SizeVer0 + 16}..{PerfEventAttr.MaxSize + 16})", 16);
        if (attrsSize % attrSize != 0)
            Fail($"attrs section size 0x{attrsSize:x} is not a multiple of attr_size {attrSize}", 32);
        if (attrsSize / attrSize > MaxAttrs || attrsSize > MaxAttrsBytes)
            Fail($"attrs section claims {attrsSize / attrSize} attrs in 0x{attrsSize:x} bytes (more than {MaxAttrs} or {MaxAttrsBytes >> 20} MiB)", 32);
        CheckSection("attrs", attrsOff, attrsSize, fileLength, 24);
        if (dataSize == 0 && (fileLength < 0 || (ulong)fileLength > dataOff))
        {
            // perf writes data.size at the end of a recording; a perf record that was killed leaves 0.
            // perf then warns and reads to the end of the file; so do we (features are not there).
            _tally.Add("perf.data.size-zero", At(48), "the header's data size is 0 (perf record did not finish?): reading records to the end of the input", TallySeverity.Notice);
            Array.Clear(_session.FeatureBitmap);
            dataSize = fileLength >= 0 ? (ulong)fileLength - dataOff : ulong.MaxValue;
        }
        if (dataSize != ulong.MaxValue && fileLength >= 0 && dataOff < (ulong)fileLength
            && (dataSize > (ulong)fileLength || dataOff > (ulong)fileLength - dataSize))
        {
            // A truncated copy (a disk ran full, a download cut short): the records that are there are
            // still records. Read them up to the end of the file, say so, and forget the feature sections
            // (they were after the data). The last record may be cut: the framer counts that.
            _tally.Add("perf.data.truncated-file", At(48),
                $"data section 0x{dataOff:x}+0x{dataSize:x} runs past the end of the file (size 0x{fileLength:x}): the file is cut short; reading the 0x{(ulong)fileLength - dataOff:x} bytes present");
            Array.Clear(_session.FeatureBitmap);
            dataSize = (ulong)fileLength - dataOff;
        }
        if (dataSize != ulong.MaxValue) CheckSection("data", dataOff, dataSize, fileLength, 40);
        if (dataOff < headerSize)
            Fail($"data section at 0x{dataOff:x} overlaps the {headerSize}-byte header", 40);
        long size = dataSize == ulong.MaxValue ? -1 : (long)dataSize; // -1: to the end of the input
        _session.DataOffset = (long)dataOff;
        _session.DataSize = size;
        Sections = new PerfFileSections((long)headerSize, (long)attrSize, (long)attrsOff, (long)attrsSize, (long)dataOff, size);
    }

    private void CheckSection(string name, ulong offset, ulong size, long fileLength, long fieldOffset)
    {
        // A section must at least fit in a long; with a known length it must fit in the file.
        ulong limit = fileLength >= 0 ? (ulong)fileLength : long.MaxValue;
        if (size > limit || offset > limit - size)
        {
            string len = fileLength >= 0 ? $"end of file (size 0x{fileLength:x})" : "any possible file";
            Fail($"{name} section 0x{offset:x}+0x{size:x} runs past {len}", fieldOffset);
        }
    }

    /// <summary>
    /// The attrs section: <c>{ perf_event_attr attr (attr_size - 16 bytes); perf_file_section ids; }[n]</c>.
    /// The attr's own <c>size</c> says how much of it is filled (older perf: smaller; a tail is 0).
    /// </summary>
    public void ParseAttrs(ReadOnlySpan<byte> attrs, long attrsOffset, Func<long, long, ReadOnlyMemory<byte>> readIds)
    {
        int stride = (int)Sections.AttrSize;
        int attrBytes = stride - 16;
        for (int i = 0; (long)(i + 1) * stride <= attrs.Length; i++)
        {
            var entry = attrs.Slice(i * stride, stride);
            long at = attrsOffset + (long)i * stride;
            uint size = TOrder.UInt32(entry[4..]);
            if (size == 0) size = PerfEventAttr.SizeVer0;
            if (size < PerfEventAttr.SizeVer0 || size > attrBytes)
                Fail($"attr {i} says its size is {size}, but the header's attr_size leaves {attrBytes} bytes for it", at + 4);
            var attr = PerfEventAttr.Parse<TOrder>(entry[..(int)size]);
            ulong idsOff = TOrder.UInt64(entry[attrBytes..]), idsSize = TOrder.UInt64(entry[(attrBytes + 8)..]);
            if (idsSize % 8 != 0) Fail($"attr {i}: ids section size 0x{idsSize:x} is not a multiple of 8", at + attrBytes + 8);
            CheckSection($"attr {i}: ids", idsOff, idsSize, _fileLength, at + attrBytes);
            if (idsSize > MaxIdsBytes) Fail($"attr {i}: ids section of 0x{idsSize:x} bytes is more than the {MaxIdsBytes >> 20} MiB a recording can have", at + attrBytes + 8);
            ulong[] ids = [];
            if (idsSize > 0)
            {
                var bytes = readIds((long)idsOff, (long)idsSize).Span;
                ids = new ulong[bytes.Length / 8];
                for (int k = 0; k < ids.Length; k++) ids[k] = TOrder.UInt64(bytes[(k * 8)..]);
            }
            _session.AddEvent(attr, ids);
        }
    }

    /// <summary>The feature table at the data end: one <c>{u64 offset, u64 size}</c> per set bit, ascending.</summary>
    public void ParseFeatureTable(ReadOnlySpan<byte> table, long tableOffset, List<(PerfFeature Feature, long Offset, long Size)> into, long fileLength)
    {
        int n = 0;
        for (int bit = 0; bit < 256; bit++)
        {
            if (!_session.HasFeatureBit(bit)) continue;
            if (table.Length < (n + 1) * 16)
            {
                _tally.Add("perf.feature.damaged", At(tableOffset + n * 16), $"feature table cut short: entry for feature {bit} missing");
                return;
            }
            ulong off = TOrder.UInt64(table[(n * 16)..]), size = TOrder.UInt64(table[(n * 16 + 8)..]);
            ulong limit = fileLength >= 0 ? (ulong)fileLength : long.MaxValue;
            if (size > limit || off > limit - size)
                _tally.Add("perf.feature.damaged", At(tableOffset + n * 16),
                    $"feature {(PerfFeature)bit} section 0x{off:x}+0x{size:x} runs past end of file" + (fileLength >= 0 ? $" (size 0x{fileLength:x})" : ""));
            else if (bit != (int)PerfFeature.TracingData) // tracing data is big and not needed
                into.Add(((PerfFeature)bit, (long)off, (long)size));
            n++;
        }
    }

    public void ParseFeature(PerfFeature feature, ReadOnlySpan<byte> payload, long offset) =>
        FeatureParser<TOrder>.Parse(_session, feature, payload, offset, _tally);

    // ---------------------------------------------------------------- record framing

    public void BeginData(long offset, long size)
    {
        _pos = offset;
        _dataRemaining = size;
        _nextProgress = offset + ProgressEvery;
    }

    /// <summary>
    /// Consumes every whole record of <paramref name="buffer"/> (advancing it). Returns false when
    /// reading must stop: the data section ended, the input ended, or a record boundary was lost.
    /// A record that straddles segments is copied into a 64 KiB scratch buffer; all others are
    /// parsed in place.
    /// </summary>
    public bool ProcessSequence(ref ReadOnlySequence<byte> buffer, bool isCompleted)
    {
        while (true)
        {
            if (_skip > 0)
            {
                long n = Math.Min(_skip, buffer.Length);
                buffer = buffer.Slice(n);
                Consume(n);
                _skip -= n;
                if (_skip > 0) break;
            }
            if (_dataRemaining == 0 || _stopped) return false;

            // Fast path: whole records inside the first segment.
            var span = buffer.FirstSpan;
            int pos = 0;
            while (span.Length - pos >= 8)
            {
                int size = TOrder.UInt16(span[(pos + 6)..]);
                if (!SizeOk(size, span.Slice(pos, 8))) { buffer = buffer.Slice(pos); return false; }
                if (span.Length - pos < size) break;
                long off = _pos;
                Consume(size);
                Arrive(span.Slice(pos, size), off);
                pos += size;
                if (_skip > 0 || _dataRemaining == 0 || _stopped) break;
            }
            buffer = buffer.Slice(pos);
            if (_stopped) return false;
            if (_skip > 0 || _dataRemaining == 0) continue;

            // A record (or its header) straddles segments.
            if (buffer.Length < 8) break;
            buffer.Slice(0, 8).CopyTo(_scratch);
            int size2 = TOrder.UInt16(_scratch.AsSpan(6));
            if (!SizeOk(size2, _scratch.AsSpan(0, 8))) return false;
            if (buffer.Length < size2) break;
            buffer.Slice(0, size2).CopyTo(_scratch);
            long off2 = _pos;
            Consume(size2);
            buffer = buffer.Slice(size2);
            Arrive(_scratch.AsSpan(0, size2), off2);
        }
        if (isCompleted)
        {
            if (buffer.Length > 0 || _skip > 0 || _dataRemaining > 0)
            {
                string what = _skip > 0 ? $"{_skip} payload bytes still expected"
                    : buffer.Length > 0 ? $"a record is cut short ({buffer.Length} bytes of it present)"
                    : $"{_dataRemaining} bytes of the data section missing";
                _tally.Add("perf.data.truncated", At(_pos), $"input ends at 0x{_pos + buffer.Length:x}: {what}");
            }
            _stopped = true;
            return false;
        }
        return true;
    }

    // ---------------------------------------------------------------- seekable file mode: read chunks

    /// <summary>A 1 MiB chunk to read input into (the sorter's, so records can stay in it while queued).</summary>
    public byte[] AcquireReadChunk(out int index)
    {
        if (_sorter is not null) return _sorter.AcquireReadChunk(out index);
        // Without a sorter nothing outlives the framing of a chunk; the reader holds at most two at once.
        _ownChunks ??= [BlockCache.Rent(1 << 20), BlockCache.Rent(1 << 20)];
        index = _ownNext;
        _ownNext ^= 1;
        return _ownChunks[index];
    }

    public void ReleaseReadChunk(int index) => _sorter?.ReleaseReadChunk(index);

    /// <summary>
    /// Frames the records in <c>chunk[..length]</c> like <see cref="ProcessSequence"/>; queued records stay in
    /// the chunk. <paramref name="consumed"/>: bytes used (a record cut by the chunk's end is left for the next).
    /// </summary>
    public bool ProcessChunk(byte[] chunk, int index, int length, bool isCompleted, out int consumed)
    {
        _inPlace = chunk;
        _inPlaceIndex = index;
        try
        {
            var seq = new ReadOnlySequence<byte>(chunk, 0, length);
            bool more = ProcessSequence(ref seq, isCompleted);
            consumed = length - (int)seq.Length;
            return more;
        }
        finally
        {
            _inPlace = null;
        }
    }

    /// <summary>The offset of <paramref name="rec"/> in the chunk being framed, or -1 when it lies elsewhere (scratch, decompressed).</summary>
    private int InPlaceOffset(ReadOnlySpan<byte> rec)
    {
        var chunk = _inPlace;
        if (chunk is null) return -1;
        nint d = System.Runtime.CompilerServices.Unsafe.ByteOffset(
            ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(chunk),
            ref System.Runtime.InteropServices.MemoryMarshal.GetReference(rec));
        return d >= 0 && d <= chunk.Length - rec.Length ? (int)d : -1;
    }

    private void Consume(long n)
    {
        _pos += n;
        if (_dataRemaining > 0) _dataRemaining -= n;
        if (_pos >= _nextProgress)
        {
            _nextProgress = _pos + ProgressEvery;
            _options.Progress?.Invoke(_pos, SamplesDelivered);
        }
    }

    /// <summary>A record size is trusted if it is at least the header and stays inside the data section.</summary>
    private bool SizeOk(int size, ReadOnlySpan<byte> header)
    {
        if (size >= 8 && (_dataRemaining < 0 || size <= _dataRemaining)) return true;
        uint type = TOrder.UInt32(header);
        string why = size < 8
            ? $"record of type {type} at 0x{_pos:x} has size {size} (< 8): record boundaries are lost"
            : $"record of type {type} at 0x{_pos:x}, size {size}, runs past the data section end at 0x{_pos + _dataRemaining:x}";
        _tally.Add(size < 8 ? "perf.record.bad-size" : "perf.record.past-data-end", At(_pos), why + "; reading stops here");
        _stopped = true;
        return false;
    }

    // ---------------------------------------------------------------- arrival: user records now, kernel records ordered

    private void Arrive(ReadOnlySpan<byte> rec, long off)
    {
        var type = (PerfRecordType)TOrder.UInt32(rec);
        if (type < PerfRecordType.HeaderAttr)
        {
            if (type == 0 || type > PerfRecordType.CallchainDeferred) { Unknown(rec, off); return; }
            if (_sorter is not null)
            {
                _decoder.BeginRecord();
                var ev = _decoder.EventOf(rec, type, out _);
                if (ev is not null && _decoder.TryGetTime(rec, type, ev, out ulong t) && t != 0 && t != ulong.MaxValue)
                {
                    // The event goes along with the record (its index as the tag): no second lookup at delivery.
                    int at = InPlaceOffset(rec);
                    if (at >= 0) _sorter.QueueInPlace(_inPlaceIndex, at, rec.Length, t, off, _deliver, ev.Index);
                    else _sorter.Queue(rec, t, off, _deliver, ev.Index);
                    return;
                }
            }
            Deliver(rec, off);
            return;
        }
        UserRecord(rec, off, type);
    }

    private void Unknown(ReadOnlySpan<byte> rec, long off)
    {
        uint type = TOrder.UInt32(rec);
        if (_tally.WantsExample("perf.record.unknown-type"))
            _tally.Add("perf.record.unknown-type", At(off), $"record type {type} (size {rec.Length}) is unknown: skipped", TallySeverity.Notice);
        else _tally.Count("perf.record.unknown-type");
    }

    private void Damaged(string code, long off, string message)
    {
        if (_tally.WantsExample(code)) _tally.Add(code, At(off), message);
        else _tally.Count(code, 1, TallySeverity.Error);
    }

    /// <summary>perf-synthesized records (type &gt;= 64): handled at once, in file order, as perf does.</summary>
    private void UserRecord(ReadOnlySpan<byte> rec, long off, PerfRecordType type)
    {
        var r = RecordDecoder<TOrder>.MakeRecord(rec, off, null, PerfSampleId.None, 0);
        try
        {
            switch (type)
            {
                case PerfRecordType.HeaderAttr: HeaderAttr(rec, off); break;
                case PerfRecordType.HeaderTracingData:
                    // perf_record_header_tracing_data { header; u32 size; u32 pad; } + size bytes (already 8-aligned).
                    SetSkip(TOrder.UInt32(NeedBody(rec, 8, off)), off);
                    break;
                case PerfRecordType.HeaderBuildId:
                    NeedBody(rec, 28, off);
                    _session.AddBuildId(FeatureParser<TOrder>.ParseBuildIdEntry(rec));
                    break;
                case PerfRecordType.FinishedRound:
                    _sorter?.FlushRound(_deliver);
                    break;
                case PerfRecordType.IdIndex: IdIndex(rec, off); break;
                case PerfRecordType.Auxtrace:
                    // perf_record_auxtrace { header; u64 size, offset, reference; u32 idx, tid, cpu, reserved; } + size bytes.
                    SetSkip(TOrder.UInt64(NeedBody(rec, 40, off)), off);
                    break;
                case PerfRecordType.EventUpdate: EventUpdate(rec, off); break;
                case PerfRecordType.TimeConv: TimeConv(rec, off); break;
                case PerfRecordType.HeaderFeature:
                {
                    ulong feat = TOrder.UInt64(NeedBody(rec, 8, off));
                    if (rec.Length == 16) _session.FeaturesComplete = true; // the end marker: HEADER_LAST_FEATURE, no payload
                    else if (feat < 256) FeatureParser<TOrder>.Parse(_session, (PerfFeature)feat, rec[16..], off + 16, _tally);
                    break;
                }
                case PerfRecordType.Compressed:
                    Decompress(rec[8..], off);
                    return; // the inner records were passed on, not the wrapper
                case PerfRecordType.Compressed2:
                {
                    // perf_record_compressed2 { header; u64 data_size; char data[]; } padded to 8.
                    ulong dataSize = TOrder.UInt64(NeedBody(rec, 8, off));
                    if (dataSize > (ulong)(rec.Length - 16))
                    {
                        Damaged("perf.record.damaged", off, $"COMPRESSED2 data_size {dataSize} larger than its record ({rec.Length} bytes)");
                        return;
                    }
                    Decompress(rec.Slice(16, (int)dataSize), off);
                    return;
                }
                case PerfRecordType.ThreadMap:
                {
                    // { u64 nr; { u64 pid; char comm[16]; }[nr] }
                    ulong nr = TOrder.UInt64(NeedBody(rec, 8, off));
                    if (nr > (ulong)(rec.Length - 16) / 24)
                        throw new TraceFormatException($"THREAD_MAP nr {nr} larger than its record ({rec.Length} bytes)", At(off + 8));
                    break;
                }
                case PerfRecordType.HeaderEventType or PerfRecordType.AuxtraceInfo or PerfRecordType.AuxtraceError
                    or PerfRecordType.CpuMap or PerfRecordType.StatConfig or PerfRecordType.Stat or PerfRecordType.StatRound
                    or PerfRecordType.FinishedInit or PerfRecordType.BpfMetadata or PerfRecordType.SchedstatCpu
                    or PerfRecordType.SchedstatDomain:
                    break;
                default:
                    Unknown(rec, off);
                    return;
            }
        }
        catch (TraceFormatException e)
        {
            Damaged("perf.record.damaged", off, $"{type} record at 0x{off:x}: {e.Detail}");
            return;
        }
        _handler.OnOtherRecord(in r);
    }

    private ReadOnlySpan<byte> NeedBody(ReadOnlySpan<byte> rec, int bodyBytes, long off)
    {
        if (rec.Length - 8 < bodyBytes)
            throw new TraceFormatException($"record of {rec.Length} bytes is shorter than its {8 + bodyBytes}-byte minimum", At(off));
        return rec[8..];
    }

    private void SetSkip(ulong payload, long off)
    {
        // The payload follows the record outside header.size. In file mode it must stay inside the data section.
        if (_dataRemaining >= 0 && payload > (ulong)_dataRemaining)
        {
            _tally.Add("perf.record.past-data-end", At(off),
                $"payload of {payload} bytes after the record at 0x{off:x} runs past the data section end; reading stops here");
            _stopped = true;
            return;
        }
        _skip = (long)Math.Min(payload, long.MaxValue);
    }

    /// <summary>HEADER_ATTR (pipe mode): <c>perf_event_attr attr (attr.size bytes); u64 id[]</c> to the record end.</summary>
    private void HeaderAttr(ReadOnlySpan<byte> rec, long off)
    {
        var body = NeedBody(rec, PerfEventAttr.SizeVer0, off);
        uint size = TOrder.UInt32(body[4..]);
        if (size == 0) size = PerfEventAttr.SizeVer0;
        if (size < PerfEventAttr.SizeVer0 || size > body.Length || (body.Length - size) % 8 != 0)
            throw new TraceFormatException($"HEADER_ATTR attr size {size} does not fit its {body.Length}-byte body", At(off + 12));
        var attr = PerfEventAttr.Parse<TOrder>(body[..(int)size]);
        var idBytes = body[(int)size..];
        var ids = new ulong[idBytes.Length / 8];
        for (int k = 0; k < ids.Length; k++) ids[k] = TOrder.UInt64(idBytes[(k * 8)..]);
        _session.AddEvent(attr, ids);
    }

    /// <summary>
    /// ID_INDEX: <c>u64 nr; { u64 id, idx, cpu, tid; }[nr]</c> (newer perf may append
    /// <c>{machine_pid, vcpu}[nr]</c>). <c>idx</c> is the mmap index, not the event: the record only
    /// adds cpu/tid to ids the attrs already named, so it is checked, not used.
    /// </summary>
    private void IdIndex(ReadOnlySpan<byte> rec, long off)
    {
        var body = NeedBody(rec, 8, off);
        ulong nr = TOrder.UInt64(body);
        if (nr > (ulong)(body.Length - 8) / 32)
            throw new TraceFormatException($"ID_INDEX nr {nr} larger than its record ({rec.Length} bytes)", At(off + 8));
        for (int i = 0; i < (int)nr; i++)
        {
            ulong id = TOrder.UInt64(body[(8 + i * 32)..]);
            if (_session.FindEventById(id) is null && _session.Events.Count > 1)
                _tally.Add("perf.id-index.unknown-id", At(off), $"ID_INDEX names id {id}, which no attr has", TallySeverity.Notice);
        }
    }

    /// <summary>EVENT_UPDATE: <c>u64 type (0 UNIT, 1 SCALE, 2 NAME, 3 CPUS); u64 id; payload</c>.</summary>
    private void EventUpdate(ReadOnlySpan<byte> rec, long off)
    {
        var body = NeedBody(rec, 16, off);
        ulong kind = TOrder.UInt64(body), id = TOrder.UInt64(body[8..]);
        if (kind != 2) return;
        var name = body[16..];
        int nul = name.IndexOf((byte)0);
        if (nul < 0) throw new TraceFormatException("EVENT_UPDATE name has no terminating NUL", At(off + 24));
        var ev = _session.FindEventById(id) ?? (_session.Events.Count == 1 ? _session.Events[0] : null);
        if (ev is not null && nul > 0)
        {
            ev.Name = System.Text.Encoding.UTF8.GetString(name[..nul]);
            ev.HasRecordedName = true;
        }
    }

    /// <summary>TIME_CONV: <c>u64 time_shift, time_mult, time_zero; [u64 time_cycles, time_mask; u8 cap_user_time_zero, cap_user_time_short; u8 reserved[6]]</c>.</summary>
    private void TimeConv(ReadOnlySpan<byte> rec, long off)
    {
        var b = NeedBody(rec, 24, off);
        bool ext = b.Length >= 48;
        _session.TimeConv = new PerfTimeConv(TOrder.UInt64(b), TOrder.UInt64(b[8..]), TOrder.UInt64(b[16..]),
            ext ? TOrder.UInt64(b[24..]) : 0, ext ? TOrder.UInt64(b[32..]) : 0, ext && b[40] != 0, ext && b[41] != 0);
    }

    // ---------------------------------------------------------------- compression

    private void Decompress(ReadOnlySpan<byte> payload, long off)
    {
        _zstd ??= new ZstdRecordStream(TOrder.IsBigEndian);
        long saved = _zstdRecordOffset;
        _zstdRecordOffset = off;
        var result = _zstd.Feed(payload, _onDecompressed, out int badSize);
        _zstdRecordOffset = saved;
        if (result == ZstdRecordStream.Result.BadData)
            Damaged("perf.zstd.damaged", off, $"zstd data in the compressed record at 0x{off:x} is damaged; the decompressed stream restarts");
        else if (result == ZstdRecordStream.Result.BadRecordSize)
            Damaged("perf.zstd.damaged", off, $"a decompressed record from the compressed record at 0x{off:x} has size {badSize} (< 8); the decompressed stream restarts");
    }

    private bool OnDecompressed(ReadOnlySpan<byte> rec)
    {
        long off = _zstdRecordOffset;
        var type = (PerfRecordType)TOrder.UInt32(rec);
        if (type is PerfRecordType.Compressed or PerfRecordType.Compressed2)
        {
            Damaged("perf.record.damaged", off, "a compressed record inside compressed data: skipped");
            return true;
        }
        if (type is PerfRecordType.Auxtrace or PerfRecordType.HeaderTracingData)
        {
            // Their payload follows inside the decompressed stream.
            try
            {
                ulong payload = type == PerfRecordType.Auxtrace ? TOrder.UInt64(NeedBody(rec, 40, off)) : TOrder.UInt32(NeedBody(rec, 8, off));
                _zstd!.SkipRemaining = (long)Math.Min(payload, long.MaxValue);
            }
            catch (TraceFormatException e)
            {
                Damaged("perf.record.damaged", off, $"{type} record in compressed data: {e.Detail}");
            }
            var r = RecordDecoder<TOrder>.MakeRecord(rec, off, null, PerfSampleId.None, 0);
            _handler.OnOtherRecord(in r);
            return true;
        }
        Arrive(rec, off);
        return !_stopped;
    }

    // ---------------------------------------------------------------- delivery (time order)

    private void Deliver(ReadOnlySpan<byte> rec, long off)
    {
        var type = (PerfRecordType)TOrder.UInt32(rec);
        _decoder.BeginRecord();
        ulong id = 0;
        int tag = _sorter?.DeliveringTag ?? -1;
        var ev = tag >= 0 && tag < _session.Events.Count ? _session.Events[tag] : _decoder.EventOf(rec, type, out id);
        if (type == PerfRecordType.Sample)
        {
            DeliverSample(rec, off, ev, id);
            return;
        }
        if (ev is null && _session.Events.Count > 0)
        {
            if (_tally.WantsExample("perf.record.unknown-id"))
                _tally.Add("perf.record.unknown-id", At(off), $"{type} record carries sample id {id}, which no event has; read with the first event's layout", TallySeverity.Notice);
            else _tally.Count("perf.record.unknown-id");
            ev = _session.Events[0];
        }
        if (!_decoder.TryParseTrailer(rec, ev, out var sid, out int trailer))
        {
            Damaged("perf.record.damaged", off, $"{type} record of {rec.Length} bytes is too short for its {ev!.Layout.TrailerSize}-byte sample_id");
            return;
        }
        var r = RecordDecoder<TOrder>.MakeRecord(rec, off, ev, sid, trailer);
        switch (type)
        {
            case PerfRecordType.Mmap or PerfRecordType.Mmap2:
            {
                var m = default(PerfMmap);
                try { _decoder.DecodeMmap(r, ref m); }
                catch (TraceFormatException e) { Damaged("perf.record.damaged", off, $"{type} record at 0x{off:x}: {e.Detail}"); return; }
                _handler.OnMmap(in m);
                return;
            }
            case PerfRecordType.Comm:
            {
                var m = default(PerfComm);
                try { _decoder.DecodeComm(r, ref m); }
                catch (TraceFormatException e) { Damaged("perf.record.damaged", off, $"COMM record at 0x{off:x}: {e.Detail}"); return; }
                _handler.OnComm(in m);
                return;
            }
            case PerfRecordType.Fork or PerfRecordType.Exit:
            {
                var t = default(PerfTaskEvent);
                try { _decoder.DecodeTask(r, ref t); }
                catch (TraceFormatException e) { Damaged("perf.record.damaged", off, $"{type} record at 0x{off:x}: {e.Detail}"); return; }
                if (type == PerfRecordType.Fork) _handler.OnFork(in t); else _handler.OnExit(in t);
                return;
            }
            case PerfRecordType.CallchainDeferred:
            {
                var d = default(PerfDeferredCallchain);
                try { _decoder.DecodeDeferred(r, ref d); }
                catch (TraceFormatException e) { Damaged("perf.record.damaged", off, $"CALLCHAIN_DEFERRED record at 0x{off:x}: {e.Detail}"); return; }
                _handler.OnDeferredCallchain(in d);
                return;
            }
            case PerfRecordType.Lost:
                // { u64 id; u64 lost; }
                if (r.Body.Length >= 16) _tally.Count("perf.lost-events", (long)Math.Min(r.U64(16), long.MaxValue));
                else { Damaged("perf.record.damaged", off, $"LOST record of {rec.Length} bytes is too short"); return; }
                break;
            case PerfRecordType.LostSamples:
                // { u64 lost; }
                if (r.Body.Length >= 8) _tally.Count("perf.lost-samples", (long)Math.Min(r.U64(8), long.MaxValue));
                else { Damaged("perf.record.damaged", off, $"LOST_SAMPLES record of {rec.Length} bytes is too short"); return; }
                break;
            case PerfRecordType.Throttle or PerfRecordType.Unthrottle:
                // { u64 time, id, stream_id; }
                if (r.Body.Length < 24) { Damaged("perf.record.damaged", off, $"{type} record of {rec.Length} bytes is too short"); return; }
                break;
            case PerfRecordType.Ksymbol:
                // { u64 addr; u32 len; u16 ksym_type; u16 flags; char name[]; }
                if (r.Body.Length < 17 || r.Body[16..].IndexOf((byte)0) < 0) { Damaged("perf.record.damaged", off, $"KSYMBOL record at 0x{off:x} is too short or its name has no NUL"); return; }
                break;
            case PerfRecordType.BpfEvent:
                // { u16 type; u16 flags; u32 id; u8 tag[8]; }
                if (r.Body.Length < 16) { Damaged("perf.record.damaged", off, $"BPF_EVENT record of {rec.Length} bytes is too short"); return; }
                break;
            case PerfRecordType.Cgroup:
                // { u64 id; char path[]; }
                if (r.Body.Length < 9 || r.Body[8..].IndexOf((byte)0) < 0) { Damaged("perf.record.damaged", off, $"CGROUP record at 0x{off:x} is too short or its path has no NUL"); return; }
                break;
        }
        _handler.OnOtherRecord(in r);
    }

    private void DeliverSample(ReadOnlySpan<byte> rec, long off, PerfEvent? ev, ulong id)
    {
        if (ev is null)
        {
            string why = _session.Events.Count == 0 ? "no event (attr) is known yet" : $"its sample id {id} belongs to no event";
            Damaged("perf.sample.unknown-event", off, $"SAMPLE at 0x{off:x} skipped: {why}");
            return;
        }
        if (_deferredStage is not null && OfferDeferred(rec, off, ev))
        {
            SamplesDelivered++;
            return;
        }
        var s = default(PerfSample);
        try
        {
            _decoder.DecodeSample(rec, off, ev, ref s);
        }
        catch (TraceFormatException e)
        {
            Damaged("perf.sample.damaged", off, $"SAMPLE of {ev.Name} at 0x{off:x} ({rec.Length} bytes): {e.Detail}");
            return;
        }
        SamplesDelivered++;
        _handler.OnSample(in s);
    }

    /// <summary>
    /// A sample of a fixed layout (every field a u64 up to the callchain, which ends the record) whose chain ends in
    /// <c>USER_DEFERRED, cookie</c> goes to the joiner undecoded: read only tid, time and cookie here. Only when
    /// <see cref="RecordDecoder{TOrder}.DecodeSample"/> would accept it (the record is exactly the callchain's end)
    /// and it has a tid; anything else takes the ordinary path.
    /// </summary>
    private bool OfferDeferred(ReadOnlySpan<byte> rec, long off, PerfEvent ev)
    {
        var l = ev.Layout;
        int cc = l.CallchainAt;
        if (cc < 0 || l.TidAt < 0) return false;
        int chainBytes = rec.Length - cc - 8;
        // At least the marker and the cookie, and nr exactly what the record holds.
        if (chainBytes < 16 || TOrder.UInt64(rec[cc..]) != (ulong)(chainBytes >> 3) || (chainBytes & 7) != 0) return false;
        if (TOrder.UInt64(rec[^16..]) != PerfContext.UserDeferred) return false;
        int tid = (int)TOrder.UInt32(rec[(l.TidAt + 4)..]);
        if (tid < 0) return false;
        ulong time = l.TimeAt >= 0 ? TOrder.UInt64(rec[l.TimeAt..]) : 0;
        return _deferredStage!.TryTakeDeferred(rec, off, ev, tid, time, TOrder.UInt64(rec[^8..]));
    }

    // ---------------------------------------------------------------- end

    public void Finish()
    {
        if (_zstd is { Pending: > 0 } z)
            Damaged("perf.zstd.truncated", _pos, $"the compressed data ends inside a record ({z.Pending} bytes of it decompressed)");
        _sorter?.FlushAll(_deliver);
        if (_sorter is { ForcedFlushes: > 0 })
            _tally.Add("perf.order.queue-full", _sorter.ForcedFlushes, At(-1),
                $"the time-order queue reached {_options.MaxQueuedBytes} bytes and delivered its older half early", TallySeverity.Notice);
        _options.Progress?.Invoke(_pos, SamplesDelivered);
        _handler.OnEnd();
    }

    public void OnIdle() => _handler.OnIdle();

    public void Dispose()
    {
        _zstd?.Dispose();
        _sorter?.Dispose();
        if (_ownChunks is not null)
        {
            foreach (var c in _ownChunks) BlockCache.Return(c);
            _ownChunks = null;
        }
    }
}
