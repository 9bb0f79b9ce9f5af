using System.Buffers;
using System.Buffers.Binary;
using TraceUnwind.Diagnostics;
using TraceUnwind.Perf.Deferred;

namespace TraceUnwind.Perf.Inject;

/// <summary>Options of <see cref="PerfInjector"/>.</summary>
public sealed class PerfInjectOptions
{
    /// <summary>The joiner's caps (CLI <c>--max-pending</c>).</summary>
    public DeferredJoinOptions Join { get; set; } = new();

    /// <summary>
    /// Bytes of records kept behind a sample that waits for its deferred record (the output is written
    /// in time order, so they wait with it). Past this the oldest waiting sample is let go as lost
    /// (<c>perf.deferred.lost-overflow</c>).
    /// </summary>
    public long MaxQueuedBytes { get; set; } = 256L << 20;

    /// <summary>
    /// Write an attr larger than 128 bytes (PERF_ATTR_SIZE_VER7) at 128 when its bytes past 128 are all
    /// zero (a field past <c>size</c> reads as 0, so the attr means the same). perf up to 6.2 refuses
    /// attrs larger than its own struct (128 bytes in perf 6.1: "file uses a more recent and unsupported
    /// ABI"), and perf 7.2 writes 144.
    /// </summary>
    public bool TrimAttrs { get; set; } = true;

    /// <summary>Read-buffer size for the input (bytes).</summary>
    public int BufferSize { get; set; } = 1 << 20;
}

/// <summary>What <see cref="PerfInjector"/> wrote.</summary>
public sealed class PerfInjectResult
{
    internal PerfInjectResult(PerfSession session, DeferredJoinStats join) { Session = session; Join = join; }

    /// <summary>The input's session (events as read, before the defer bits were cleared).</summary>
    public PerfSession Session { get; }
    /// <summary>What the joiner did (joined / lost by reason).</summary>
    public DeferredJoinStats Join { get; }
    /// <summary>Records written to the data section.</summary>
    public long RecordsWritten { get; internal set; }
    /// <summary>Samples written with a rewritten callchain (joined or lost).</summary>
    public long SamplesRewritten { get; internal set; }
    /// <summary>PERF_RECORD_CALLCHAIN_DEFERRED records left out.</summary>
    public long DeferredRecordsRemoved { get; internal set; }
    /// <summary>Pipe-mode header records left out (their content went to the attrs and feature sections).</summary>
    public long HeaderRecordsRemoved { get; internal set; }
}

/// <summary>
/// <c>traceunwind inject</c>: copies a perf.data (file or pipe mode, either byte order, <c>-z</c>) into a
/// new file-mode perf.data that tools without deferred-callchain support read as an ordinary
/// <c>--call-graph fp</c> capture:
/// <list type="bullet">
/// <item>every sample joined by <see cref="DeferredCallchainJoiner"/> carries an ordinary callchain:
/// its kernel part, <c>PERF_CONTEXT_USER</c>, the deferred record's user ips; a lost one ends at its
/// kernel part (no marker, no cookie);</item>
/// <item>PERF_RECORD_CALLCHAIN_DEFERRED records are left out; attr flag bits 38 (<c>defer_callchain</c>)
/// and 39 (<c>defer_output</c>) are cleared (and attrs trimmed, <see cref="PerfInjectOptions.TrimAttrs"/>);</item>
/// <item>everything else is kept: attrs with their ids and names, feature sections (except COMPRESSED: the
/// output is not compressed; EVENT_DESC is rebuilt from the attrs), and every other record byte for byte
/// (MMAP/MMAP2, COMM, FORK/EXIT, ordinary samples, FINISHED_ROUND, ...). Pipe-mode HEADER_ATTR /
/// HEADER_FEATURE / HEADER_BUILD_ID / HEADER_EVENT_TYPE records become the file's attr and feature sections.
/// Not carried: pipe-mode HEADER_TRACING_DATA and AUXTRACE payloads (counted, <c>perf.inject.payload-dropped</c>).</item>
/// </list>
/// Records are written in perf's time order (the order the joiner needs); a sample held for its
/// deferred record keeps its place, and what comes behind it waits (bounded by
/// <see cref="PerfInjectOptions.MaxQueuedBytes"/>). The output must be seekable (the header is written last).
/// </summary>
public sealed class PerfInjector
{
    private readonly PerfInjectOptions _options;

    public PerfInjector(PerfInjectOptions? options = null, ErrorTally? tally = null)
    {
        _options = options ?? new PerfInjectOptions();
        _options.Join.Validate();
        if (_options.MaxQueuedBytes < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxQueuedBytes must be at least 1");
        Tally = tally ?? new ErrorTally();
    }

    public ErrorTally Tally { get; }

    /// <summary>Reads <paramref name="input"/> to its end and writes the injected file to <paramref name="output"/>.</summary>
    /// <exception cref="TraceFormatException">The input is not perf.data or its container is damaged.</exception>
    public PerfInjectResult Run(Stream input, string sourceName, Stream output) =>
        RunAsync(input, sourceName, output, CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc cref="Run"/>
    public async Task<PerfInjectResult> RunAsync(Stream input, string sourceName, Stream output, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        if (!output.CanSeek || !output.CanWrite) throw new ArgumentException("the injected perf.data is written to a seekable stream (a file)", nameof(output));
        var readOptions = new PerfReadOptions { Order = PerfRecordOrder.Time, BufferSize = _options.BufferSize };
        using var reader = new PerfRecordReader(input, sourceName, readOptions, Tally);
        var writerSide = new Writer(reader.Session, output, _options, Tally);
        var joiner = new DeferredCallchainJoiner(reader.Session, writerSide, Tally, _options.Join, writerSide);
        writerSide.Joiner = joiner;
        await reader.RunAsync(joiner, cancellationToken).ConfigureAwait(false);
        writerSide.Complete();
        var result = writerSide.Result(joiner.Stats);
        return result;
    }

    /// <summary>The handler after the joiner: rewrites and writes records, keeping held samples' places.</summary>
    private sealed class Writer(PerfSession session, Stream output, PerfInjectOptions options, ErrorTally tally) : IPerfRecordHandler, IDeferredHoldObserver
    {
        private PerfDataWriter? _writer;
        private readonly Queue<Entry> _queue = new();
        private readonly Dictionary<long, Entry> _slots = new();
        private readonly Stack<Entry> _freeEntries = new();
        private readonly byte[] _scratch = new byte[1 << 16];
        private long _queuedBytes;
        private Entry? _current;
        private long _written, _rewritten, _deferredRemoved, _headersRemoved;
        private bool _lateAttrCounted;
        private int _eventsWritten;

        public DeferredCallchainJoiner Joiner { get; set; } = null!;

        private sealed class Entry
        {
            public byte[]? Buffer;
            public int Length;
            public long HoldId;
            public bool Filled;
        }

        public PerfInjectResult Result(DeferredJoinStats join) => new(session, join)
        {
            RecordsWritten = _written,
            SamplesRewritten = _rewritten,
            DeferredRecordsRemoved = _deferredRemoved,
            HeaderRecordsRemoved = _headersRemoved,
        };

        // -------------------------------------------------------------- records in

        public void OnSample(in PerfSample s)
        {
            if (s.DeferredResolution == PerfDeferredResolution.None)
            {
                Put(s.Record.Bytes);
                return;
            }
            _rewritten++;
            Put(Rewrite(s));
        }

        public void OnMmap(in PerfMmap mmap) => Put(mmap.Record.Bytes);
        public void OnComm(in PerfComm comm) => Put(comm.Record.Bytes);
        public void OnFork(in PerfTaskEvent fork) => Put(fork.Record.Bytes);
        public void OnExit(in PerfTaskEvent exit) => Put(exit.Record.Bytes);
        public void OnDeferredCallchain(in PerfDeferredCallchain deferred) => _deferredRemoved++;
        public void OnIdle() { }

        public void OnOtherRecord(in PerfRecord r)
        {
            switch (r.Type)
            {
                case PerfRecordType.HeaderAttr:
                    if (_writer is not null && !_lateAttrCounted)
                    {
                        _lateAttrCounted = true;
                        tally.Add("perf.inject.late-attr", new InputPosition(session.SourceName, r.FileOffset),
                            "HEADER_ATTR after the first data record: the output's attr section was already written, so samples of that event cannot be read back");
                    }
                    _headersRemoved++;
                    return;
                case PerfRecordType.HeaderFeature or PerfRecordType.HeaderBuildId or PerfRecordType.HeaderEventType:
                    _headersRemoved++;
                    return;
                case PerfRecordType.HeaderTracingData or PerfRecordType.Auxtrace:
                    // Their payload follows the record outside its size and is not kept by the reader.
                    tally.Add("perf.inject.payload-dropped", new InputPosition(session.SourceName, r.FileOffset),
                        $"{r.Type} record and its payload left out of the injected file", TallySeverity.Notice);
                    _headersRemoved++;
                    return;
                default:
                    Put(r.Bytes);
                    return;
            }
        }

        public void OnEnd()
        {
            // The joiner released every held sample before this call; nothing may stay queued.
            Drain();
            if (_queue.Count != 0) throw new InvalidOperationException($"{_queue.Count} records left behind a held sample at the end");
        }

        // -------------------------------------------------------------- held places

        public void OnHeld(long holdId)
        {
            var e = NewEntry();
            e.HoldId = holdId;
            _slots.Add(holdId, e);
            _queue.Enqueue(e);
        }

        public void OnReleased(long holdId) => _current = _slots.Remove(holdId, out var e) ? e : null;

        public void OnDropped(long holdId)
        {
            if (!_slots.Remove(holdId, out var e)) return;
            e.Filled = true;
            e.Length = 0;
            Drain();
        }

        private Entry NewEntry()
        {
            var e = _freeEntries.Count > 0 ? _freeEntries.Pop() : new Entry();
            e.Buffer = null;
            e.Length = 0;
            e.HoldId = -1;
            e.Filled = false;
            return e;
        }

        /// <summary>Writes a record now, or queues it behind a held sample, or fills the released sample's place.</summary>
        private void Put(ReadOnlySpan<byte> record)
        {
            if (_current is { } slot)
            {
                _current = null;
                Fill(slot, record);
                Drain();
                return;
            }
            if (_queue.Count == 0)
            {
                Write(record);
                return;
            }
            var e = NewEntry();
            Fill(e, record);
            _queue.Enqueue(e);
            // Bound what waits behind held samples: let the oldest held one go (it heads the queue).
            while (_queuedBytes > options.MaxQueuedBytes && Joiner.ReleaseOldest()) { }
        }

        private void Fill(Entry e, ReadOnlySpan<byte> record)
        {
            e.Buffer = ArrayPool<byte>.Shared.Rent(record.Length);
            record.CopyTo(e.Buffer);
            e.Length = record.Length;
            e.Filled = true;
            _queuedBytes += record.Length;
        }

        private void Drain()
        {
            while (_queue.Count > 0 && _queue.Peek().Filled)
            {
                var e = _queue.Dequeue();
                if (e.Buffer is not null)
                {
                    if (e.Length > 0) Write(e.Buffer.AsSpan(0, e.Length));
                    _queuedBytes -= e.Length;
                    ArrayPool<byte>.Shared.Return(e.Buffer);
                }
                e.Buffer = null;
                _freeEntries.Push(e);
            }
        }

        // -------------------------------------------------------------- output

        private void Write(ReadOnlySpan<byte> record)
        {
            Begin();
            _writer!.WriteRecord(record);
            _written++;
        }

        /// <summary>Attrs go out with the first record (in pipe mode the HEADER_ATTRs came before it).</summary>
        private void Begin()
        {
            if (_writer is not null) return;
            _writer = new PerfDataWriter(output, session.IsBigEndian);
            foreach (var e in session.Events) _writer.AddEvent(OutputAttr(e.Attr, options.TrimAttrs), e.Ids, e.Name);
            _eventsWritten = session.Events.Count;
        }

        public void Complete()
        {
            Begin();
            var w = _writer!;
            foreach (var (feature, payload) in session.RawFeatures)
            {
                // COMPRESSED describes a compression the output does not have; EVENT_DESC is rebuilt from the attrs.
                if (feature is PerfFeature.Compressed or PerfFeature.EventDesc) continue;
                w.SetRawFeature(feature, payload);
            }
            if (!session.RawFeatures.ContainsKey(PerfFeature.BuildId) && session.BuildIds.Count > 0)
                w.SetBuildIds(session.BuildIds); // pipe mode: HEADER_BUILD_ID records
            if (session.Events.Count > _eventsWritten)
                tally.Add("perf.inject.late-attr", new InputPosition(session.SourceName),
                    $"{session.Events.Count - _eventsWritten} event(s) were declared after the first data record and are missing from the output");
            w.Complete();
        }

        /// <summary>
        /// The attr as written: defer bits cleared; an attr larger than <see cref="TrimmedSize"/> whose bytes past it
        /// are all zero is written at that size (a field past <c>size</c> reads as 0: the attr means the same).
        /// </summary>
        internal static PerfEventAttr OutputAttr(PerfEventAttr attr, bool trim)
        {
            var a = attr.Clone();
            a.Flags &= ~(PerfAttrFlags.DeferCallchain | PerfAttrFlags.DeferOutput);
            if (!trim || a.Size <= TrimmedSize) return a;
            Span<byte> bytes = stackalloc byte[(int)Math.Min(a.Size, (uint)PerfEventAttr.MaxSize)];
            a.Encode(bytes, false);
            if (bytes[TrimmedSize..].ContainsAnyExcept((byte)0)) return a;
            a.Size = TrimmedSize;
            a.RawBytes = null;
            return a;
        }

        /// <summary>PERF_ATTR_SIZE_VER7 (up to <c>sig_data</c>): the struct perf 5.13 .. 6.2 know (perf 6.1 refuses anything larger).</summary>
        private const int TrimmedSize = 128;

        /// <summary>
        /// The sample with an ordinary callchain, in the input's byte order: the record's bytes up to the
        /// callchain, the new chain, the bytes after the old chain. Joined (perf's merged form
        /// <c>kernel…, USER_DEFERRED, ips…</c>): the marker becomes PERF_CONTEXT_USER (dropped when the
        /// record had no ips). Lost: the chain without marker and cookie.
        /// </summary>
        private ReadOnlySpan<byte> Rewrite(in PerfSample s)
        {
            var raw = s.Record.Bytes;
            bool be = s.Record.IsBigEndian;
            int at = CallchainOffset(s);
            ulong oldNr = be ? BinaryPrimitives.ReadUInt64BigEndian(raw[at..]) : BinaryPrimitives.ReadUInt64LittleEndian(raw[at..]);
            // The record decoded once with this nr, so the chain lies inside it.
            int oldEnd = at + 8 + (int)oldNr * 8;
            var chain = s.Callchain;
            int marker = s.DeferredResolution == PerfDeferredResolution.Joined ? IndexOfMarker(chain, (int)oldNr - 2) : (int)oldNr - 2;
            ReadOnlySpan<ulong> kernel = chain[..marker];
            ReadOnlySpan<ulong> user = s.DeferredResolution == PerfDeferredResolution.Joined ? chain[(marker + 1)..] : default;
            int suffix = raw.Length - oldEnd;
            int room = (_scratch.Length - 1 - at - 8 - suffix) / 8 - kernel.Length - (user.IsEmpty ? 0 : 1);
            if (user.Length > room)
            {
                tally.Add("perf.inject.chain-truncated", new InputPosition(session.SourceName, s.Record.FileOffset),
                    $"joined callchain of {kernel.Length + 1 + user.Length} entries does not fit a 64 KiB record: {user.Length - room} outermost user frames cut", TallySeverity.Notice);
                user = user[..Math.Max(0, room)];
            }
            var o = _scratch.AsSpan();
            raw[..at].CopyTo(o);
            int p = at + 8;
            foreach (ulong ip in kernel) Put64(o, ref p, ip, be);
            if (!user.IsEmpty)
            {
                Put64(o, ref p, PerfContext.User, be);
                foreach (ulong ip in user) Put64(o, ref p, ip, be);
            }
            ulong nr = (ulong)(p - at - 8) / 8;
            if (be) BinaryPrimitives.WriteUInt64BigEndian(o[at..], nr); else BinaryPrimitives.WriteUInt64LittleEndian(o[at..], nr);
            raw[oldEnd..].CopyTo(o[p..]);
            p += suffix;
            if (be) BinaryPrimitives.WriteUInt16BigEndian(o[6..], (ushort)p); else BinaryPrimitives.WriteUInt16LittleEndian(o[6..], (ushort)p);
            return o[..p];
        }

        /// <summary>The merged chain keeps the original's entries before the cookie, so the marker is where it was.</summary>
        private static int IndexOfMarker(ReadOnlySpan<ulong> chain, int expected) =>
            expected >= 0 && expected < chain.Length && chain[expected] == PerfContext.UserDeferred ? expected : chain.IndexOf(PerfContext.UserDeferred);

        private static void Put64(Span<byte> o, ref int p, ulong v, bool be)
        {
            if (be) BinaryPrimitives.WriteUInt64BigEndian(o[p..], v); else BinaryPrimitives.WriteUInt64LittleEndian(o[p..], v);
            p += 8;
        }

        /// <summary>Byte offset of the callchain's nr: the fixed words before it (kernel order), then the READ block.</summary>
        private static int CallchainOffset(in PerfSample s)
        {
            var t = s.SampleType;
            int words = 0;
            foreach (var bit in FixedBeforeCallchain) if ((t & bit) != 0) words++;
            if ((t & PerfSampleType.Read) != 0) words += s.Read.Length;
            return 8 + 8 * words;
        }

        private static readonly PerfSampleType[] FixedBeforeCallchain =
        [
            PerfSampleType.Identifier, PerfSampleType.Ip, PerfSampleType.Tid, PerfSampleType.Time, PerfSampleType.Addr,
            PerfSampleType.Id, PerfSampleType.StreamId, PerfSampleType.Cpu, PerfSampleType.Period,
        ];
    }
}
