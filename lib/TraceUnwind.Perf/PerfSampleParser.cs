using TraceUnwind.Buffers;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Perf;

internal interface ISampleDecoder
{
    bool TryDecodeSample(ReadOnlySpan<byte> record, long fileOffset, ref PerfSample sample, out string? error);
    bool TryDecodeDeferred(ReadOnlySpan<byte> record, long fileOffset, ref PerfDeferredCallchain deferred, out string? error);
    bool TryDecodeAgain(ReadOnlySpan<byte> record, long fileOffset, PerfEvent ev, ref PerfSample sample);
    bool TryDeliverJoined(ReadOnlySpan<byte> record, long fileOffset, PerfEvent ev, ReadOnlySpan<ulong> ips, ulong[] chain, IPerfRecordHandler next);
}

internal sealed class SampleDecoder<TOrder>(PerfSession session) : ISampleDecoder where TOrder : struct, IByteOrder
{
    private readonly RecordDecoder<TOrder> _decoder = new(session);

    public bool TryDecodeSample(ReadOnlySpan<byte> record, long fileOffset, ref PerfSample sample, out string? error)
    {
        error = null;
        _decoder.BeginRecord();
        if (record.Length < 8 || TOrder.UInt32(record) != (uint)PerfRecordType.Sample) { error = "not a SAMPLE record"; return false; }
        var ev = _decoder.EventOf(record, PerfRecordType.Sample, out ulong id);
        if (ev is null) { error = $"sample id {id} belongs to no event"; return false; }
        try
        {
            _decoder.DecodeSample(record, fileOffset, ev, ref sample);
            return true;
        }
        catch (TraceFormatException e)
        {
            error = e.Detail;
            return false;
        }
    }

    public bool TryDecodeAgain(ReadOnlySpan<byte> record, long fileOffset, PerfEvent ev, ref PerfSample sample)
    {
        _decoder.BeginRecord();
        return _decoder.TryDecodeSampleAgain(record, fileOffset, ev, ref sample);
    }

    public bool TryDeliverJoined(ReadOnlySpan<byte> record, long fileOffset, PerfEvent ev, ReadOnlySpan<ulong> ips, ulong[] chain, IPerfRecordHandler next)
    {
        // The sample is a local of this (byte-order specific) method: decoded in place, no copy of it on the way to next.
        var s = default(PerfSample);
        _decoder.BeginRecord();
        if (!_decoder.TryDecodeSampleAgain(record, fileOffset, ev, ref s)) return false;
        // perf's sample__merge_deferred_callchain: the chain without its cookie (the marker stays), then the deferred ips.
        var cc = s.Callchain;
        int keep = cc.Length - 1;
        int n = Math.Min(ips.Length, chain.Length - keep);
        s.DeferredResolution = PerfDeferredResolution.Joined;
        if (next is PerfSampleBuilder builder)
        {
            // The builder takes the two parts as they are: no merged copy.
            s.Callchain = cc[..keep];
            builder.OnJoinedSample(in s, ips[..n]);
            return true;
        }
        cc[..keep].CopyTo(chain);
        ips[..n].CopyTo(chain.AsSpan(keep));
        s.Callchain = chain.AsSpan(0, keep + n);
        next.OnSample(in s);
        return true;
    }

    public bool TryDecodeDeferred(ReadOnlySpan<byte> record, long fileOffset, ref PerfDeferredCallchain deferred, out string? error)
    {
        error = null;
        _decoder.BeginRecord();
        if (record.Length < 8 || TOrder.UInt32(record) != (uint)PerfRecordType.CallchainDeferred) { error = "not a CALLCHAIN_DEFERRED record"; return false; }
        var ev = _decoder.EventOf(record, PerfRecordType.CallchainDeferred, out _) ?? (session.Events.Count > 0 ? session.Events[0] : null);
        if (!_decoder.TryParseTrailer(record, ev, out var sid, out int trailer)) { error = "record shorter than its sample_id"; return false; }
        var r = RecordDecoder<TOrder>.MakeRecord(record, fileOffset, ev, sid, trailer);
        try
        {
            _decoder.DecodeDeferred(r, ref deferred);
            return true;
        }
        catch (TraceFormatException e)
        {
            error = e.Detail;
            return false;
        }
    }
}

/// <summary>
/// Decodes a SAMPLE or CALLCHAIN_DEFERRED record again from a kept copy of its bytes (a stage
/// that holds records, like the deferred-callchain joiner, copies <c>Record.Bytes</c> and parses
/// the copy when it lets the record go). Has its own scratch, so it may be used inside a handler
/// call without disturbing the record being delivered.
/// </summary>
public sealed class PerfSampleParser
{
    private readonly ISampleDecoder _decoder;

    /// <summary>A parser for records of <paramref name="session"/> (its byte order and events).</summary>
    public PerfSampleParser(PerfSession session)
    {
        _decoder = session.IsBigEndian ? new SampleDecoder<BigEndian>(session) : new SampleDecoder<LittleEndian>(session);
    }

    /// <summary>Decodes a SAMPLE; false with <paramref name="error"/> when it is damaged or its event unknown.</summary>
    public bool TryParseSample(ReadOnlySpan<byte> record, long fileOffset, out PerfSample sample, out string? error)
    {
        sample = default;
        return _decoder.TryDecodeSample(record, fileOffset, ref sample, out error);
    }

    /// <summary>
    /// Decodes again a SAMPLE that decoded before with event <paramref name="ev"/> (a stage's held copy): the
    /// fields at fixed offsets when the layout allows (<c>RecordDecoder.TryDecodeSampleAgain</c>). False only if
    /// the bytes changed since.
    /// </summary>
    internal bool TryDecodeAgain(ReadOnlySpan<byte> record, long fileOffset, PerfEvent ev, out PerfSample sample)
    {
        sample = default;
        return _decoder.TryDecodeAgain(record, fileOffset, ev, ref sample);
    }

    /// <summary>
    /// Decodes again a held deferred sample (as <see cref="TryDecodeAgain"/>) and hands it to <paramref name="next"/> joined
    /// with <paramref name="ips"/> (perf's merged form, built in <paramref name="chain"/>). False, and nothing handed on, if
    /// the bytes no longer decode.
    /// </summary>
    internal bool TryDeliverJoined(ReadOnlySpan<byte> record, long fileOffset, PerfEvent ev, ReadOnlySpan<ulong> ips, ulong[] chain, IPerfRecordHandler next) =>
        _decoder.TryDeliverJoined(record, fileOffset, ev, ips, chain, next);

    /// <summary>Decodes a CALLCHAIN_DEFERRED record.</summary>
    public bool TryParseDeferred(ReadOnlySpan<byte> record, long fileOffset, out PerfDeferredCallchain deferred, out string? error)
    {
        deferred = default;
        return _decoder.TryDecodeDeferred(record, fileOffset, ref deferred, out error);
    }
}
