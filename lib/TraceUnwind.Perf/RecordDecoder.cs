using System.Runtime.InteropServices;
using TraceUnwind.Buffers;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Perf;

/// <summary>
/// Decodes single records of one session in byte order <typeparamref name="TOrder"/>: which
/// event a record belongs to, its timestamp, its sample_id trailer, and the typed bodies
/// (SAMPLE, MMAP/MMAP2, COMM, FORK/EXIT, CALLCHAIN_DEFERRED). Stateless except for a scratch
/// array that holds host-order copies of u64 arrays when the input's byte order is not the
/// host's; on a little-endian input on a little-endian host the arrays are views of the record.
/// Damage inside a record throws <see cref="TraceFormatException"/> from the bounds-checked
/// cursor; the caller counts it and skips the record (its boundary is still trusted).
/// </summary>
internal sealed class RecordDecoder<TOrder> where TOrder : struct, IByteOrder
{
    private readonly PerfSession _session;
    // A record is at most 64 KiB, so at most 8192 words need converting per record.
    private readonly ulong[] _words = new ulong[8192];
    private int _wordsUsed;
    // Events found by id, by the id's low bits: perf gives each event one id per CPU (or thread), so a
    // few ids repeat all the time. An id, once known, always names the same event (PerfSession.AddEvent).
    private readonly ulong[] _cachedIds = new ulong[16];
    private readonly PerfEvent?[] _cachedEvents = new PerfEvent?[16];

    public RecordDecoder(PerfSession session) => _session = session;

    private static bool NativeOrder => TOrder.IsBigEndian == !BitConverter.IsLittleEndian;

    /// <summary>Resets the word scratch; call once per record.</summary>
    public void BeginRecord() => _wordsUsed = 0;

    /// <summary>
    /// The event of a record (perf <c>evlist__event2evsel</c>): the only one, or the one whose id
    /// sits at the position every event agrees on; id 0 (synthesized records) means the first.
    /// Null when the id is unknown or there are no events yet.
    /// </summary>
    public PerfEvent? EventOf(ReadOnlySpan<byte> rec, PerfRecordType type, out ulong id)
    {
        id = 0;
        var events = _session.Events;
        if (events.Count == 0) return null;
        var first = events[0];
        if (!_session.NeedsIdLookup) return first;
        var layout = first.Layout;
        if (type == PerfRecordType.Sample)
        {
            int at = layout.SampleIdOffset;
            if (at < 0 || rec.Length - 8 < at) return first;
            id = TOrder.UInt64(rec[at..]);
        }
        else
        {
            int fromEnd = layout.TrailerIdFromEnd;
            if (fromEnd < 0 || rec.Length - 8 < fromEnd) return first;
            id = TOrder.UInt64(rec[(rec.Length - fromEnd)..]);
        }
        if (id == 0) return first;
        int slot = (int)id & 15;
        if (_cachedIds[slot] == id && _cachedEvents[slot] is { } hit) return hit;
        var ev = _session.FindEventById(id);
        if (ev is not null)
        {
            _cachedIds[slot] = id;
            _cachedEvents[slot] = ev;
        }
        return ev;
    }

    /// <summary>The time perf would sort a kernel record by, or false (deliver at once).</summary>
    public bool TryGetTime(ReadOnlySpan<byte> rec, PerfRecordType type, PerfEvent ev, out ulong time)
    {
        time = 0;
        var layout = ev.Layout;
        if (type == PerfRecordType.Sample)
        {
            int at = layout.SampleTimeOffset;
            if (at < 0 || rec.Length - 8 < at) return false;
            time = TOrder.UInt64(rec[at..]);
            return true;
        }
        if (layout.TrailerSize == 0 || !layout.Has(PerfSampleType.Time) || rec.Length - 8 < layout.TrailerSize) return false;
        int t = rec.Length - layout.TrailerSize + (layout.Has(PerfSampleType.Tid) ? 8 : 0);
        time = TOrder.UInt64(rec[t..]);
        return true;
    }

    /// <summary>
    /// Parses the sample_id trailer (<c>perf_evsel__parse_id_sample</c>): the last
    /// <c>TrailerSize</c> bytes, in the order <c>{pid,tid} {time} {id} {stream_id} {cpu,res} {identifier}</c>.
    /// Returns false when the record is shorter than header + trailer.
    /// </summary>
    public bool TryParseTrailer(ReadOnlySpan<byte> rec, PerfEvent? ev, out PerfSampleId sid, out int trailerSize)
    {
        sid = PerfSampleId.None;
        trailerSize = ev?.Layout.TrailerSize ?? 0;
        if (trailerSize == 0) return true;
        if (rec.Length - 8 < trailerSize) { trailerSize = 0; return false; }
        var layout = ev!.Layout;
        int p = rec.Length - trailerSize;
        if (layout.Has(PerfSampleType.Tid)) { sid.Pid = (int)TOrder.UInt32(rec[p..]); sid.Tid = (int)TOrder.UInt32(rec[(p + 4)..]); p += 8; }
        if (layout.Has(PerfSampleType.Time)) { sid.Time = TOrder.UInt64(rec[p..]); sid.HasTime = true; p += 8; }
        if (layout.Has(PerfSampleType.Id)) { sid.Id = TOrder.UInt64(rec[p..]); p += 8; }
        if (layout.Has(PerfSampleType.StreamId)) { sid.StreamId = TOrder.UInt64(rec[p..]); p += 8; }
        if (layout.Has(PerfSampleType.Cpu)) { sid.Cpu = (int)TOrder.UInt32(rec[p..]); p += 8; }
        if (layout.Has(PerfSampleType.Identifier)) { sid.Identifier = TOrder.UInt64(rec[p..]); }
        return true;
    }

    /// <summary>A u64 array of the record as host-order values (a view when the orders agree).</summary>
    private ReadOnlySpan<ulong> Words(ReadOnlySpan<byte> bytes)
    {
        if (NativeOrder) return MemoryMarshal.Cast<byte, ulong>(bytes);
        int n = bytes.Length / 8;
        var dest = _words.AsSpan(_wordsUsed, n);
        for (int i = 0; i < n; i++) dest[i] = TOrder.UInt64(bytes[(i * 8)..]);
        _wordsUsed += n;
        return dest;
    }

    private ReadOnlySpan<ulong> ReadWords(scoped ref SpanCursor<TOrder> c, ulong count, string what)
    {
        long at = c.AbsoluteOffset;
        if (count > (ulong)(c.Remaining / 8))
            ThrowHelper.Format($"{what} count {count} needs {count * 8UL} bytes, only {c.Remaining} left in the record", at);
        return Words(c.ReadBytes((int)count * 8));
    }

    /// <summary>
    /// Decodes again a SAMPLE that <see cref="DecodeSample"/> already accepted (a copy held by the
    /// deferred-callchain joiner). When every field of the event's sample_type is a fixed u64 before or at the
    /// callchain (no READ, nothing after CALLCHAIN: what <c>--call-graph fp[,defer]</c> records), the fields are
    /// read at fixed offsets without the cursor's checks (the record was checked once; spans are still bounds-checked
    /// slices); otherwise the full decode runs. False if the bytes no longer decode.
    /// </summary>
    public bool TryDecodeSampleAgain(ReadOnlySpan<byte> rec, long fileOffset, PerfEvent ev, ref PerfSample s)
    {
        var l = ev.Layout;
        int cc = l.CallchainAt;
        if (cc < 0 || rec.Length < cc + 8) return TryDecodeSampleSlow(rec, fileOffset, ev, ref s);
        s.Event = ev;
        s.SampleType = l.SampleType;
        s.Record = new PerfRecord(PerfRecordType.Sample, TOrder.UInt16(rec[4..]), rec, fileOffset, ev, default, 0, TOrder.IsBigEndian);
        if (l.IdentifierAt >= 0) s.Identifier = TOrder.UInt64(rec[l.IdentifierAt..]);
        if (l.IpAt >= 0) s.Ip = TOrder.UInt64(rec[l.IpAt..]);
        if (l.TidAt >= 0) { s.Pid = (int)TOrder.UInt32(rec[l.TidAt..]); s.Tid = (int)TOrder.UInt32(rec[(l.TidAt + 4)..]); }
        else { s.Pid = -1; s.Tid = -1; }
        if (l.TimeAt >= 0) s.Time = TOrder.UInt64(rec[l.TimeAt..]);
        if (l.AddrAt >= 0) s.Addr = TOrder.UInt64(rec[l.AddrAt..]);
        if (l.IdAt >= 0) s.Id = TOrder.UInt64(rec[l.IdAt..]);
        if (l.StreamIdAt >= 0) s.StreamId = TOrder.UInt64(rec[l.StreamIdAt..]);
        if (l.CpuAt >= 0) { s.Cpu = (int)TOrder.UInt32(rec[l.CpuAt..]); s.CpuReserved = TOrder.UInt32(rec[(l.CpuAt + 4)..]); }
        else s.Cpu = -1;
        if (l.PeriodAt >= 0) s.Period = TOrder.UInt64(rec[l.PeriodAt..]);
        ulong nr = TOrder.UInt64(rec[cc..]);
        if (nr > (ulong)(rec.Length - cc - 8) / 8) return false;
        s.Callchain = Words(rec.Slice(cc + 8, (int)nr * 8));
        return true;
    }

    private bool TryDecodeSampleSlow(ReadOnlySpan<byte> rec, long fileOffset, PerfEvent ev, ref PerfSample s)
    {
        try
        {
            DecodeSample(rec, fileOffset, ev, ref s);
            return true;
        }
        catch (TraceFormatException)
        {
            return false;
        }
    }

    /// <summary>
    /// Decodes a SAMPLE in kernel order (<c>perf_output_sample</c> = perf <c>evsel__parse_sample</c>;
    /// AUX is written last although the uapi comment lists it earlier). Throws on damage; a record
    /// that is not consumed exactly (and has no sample_type bits unknown to us) is damage too.
    /// </summary>
    public void DecodeSample(ReadOnlySpan<byte> rec, long fileOffset, PerfEvent ev, ref PerfSample s)
    {
        var layout = ev.Layout;
        var c = new SpanCursor<TOrder>(rec, fileOffset);
        c.Skip(8);
        s.Event = ev;
        s.SampleType = layout.SampleType;
        s.Pid = -1; s.Tid = -1; s.Cpu = -1;
        s.Record = new PerfRecord(PerfRecordType.Sample, TOrder.UInt16(rec[4..]), rec, fileOffset, ev, default, 0, TOrder.IsBigEndian);
        if (layout.Has(PerfSampleType.Identifier)) s.Identifier = c.ReadUInt64();
        if (layout.Has(PerfSampleType.Ip)) s.Ip = c.ReadUInt64();
        if (layout.Has(PerfSampleType.Tid)) { s.Pid = c.ReadInt32(); s.Tid = c.ReadInt32(); }
        if (layout.Has(PerfSampleType.Time)) s.Time = c.ReadUInt64();
        if (layout.Has(PerfSampleType.Addr)) s.Addr = c.ReadUInt64();
        if (layout.Has(PerfSampleType.Id)) s.Id = c.ReadUInt64();
        if (layout.Has(PerfSampleType.StreamId)) s.StreamId = c.ReadUInt64();
        if (layout.Has(PerfSampleType.Cpu)) { s.Cpu = c.ReadInt32(); s.CpuReserved = c.ReadUInt32(); }
        if (layout.Has(PerfSampleType.Period)) s.Period = c.ReadUInt64();
        if (layout.Has(PerfSampleType.Read))
        {
            var f = layout.ReadFormat;
            int entry = PerfReadValues.EntryWords(f);
            int extra = PerfReadValues.ExtraWords(f);
            if ((f & PerfReadFormat.Group) != 0)
            {
                long at = c.AbsoluteOffset;
                var peek = c;
                ulong nr = peek.ReadUInt64();
                if (nr > (ulong)(c.Remaining / 8 / entry))
                    ThrowHelper.Format($"READ group nr {nr} larger than the record", at);
                s.Read = ReadWords(ref c, (ulong)extra + nr * (ulong)entry, "READ");
            }
            else s.Read = ReadWords(ref c, (ulong)(extra + entry), "READ");
        }
        if (layout.Has(PerfSampleType.Callchain))
        {
            ulong nr = c.ReadUInt64();
            s.Callchain = ReadWords(ref c, nr, "callchain nr");
        }
        if (layout.Has(PerfSampleType.Raw))
        {
            long at = c.AbsoluteOffset;
            uint size = c.ReadUInt32();
            if (size > (uint)c.Remaining)
                ThrowHelper.Format($"RAW size {size} larger than the {c.Remaining} bytes left in the record", at);
            s.Raw = c.ReadBytes((int)size);
        }
        if (layout.Has(PerfSampleType.BranchStack))
        {
            ulong nr = c.ReadUInt64();
            s.BranchNr = nr;
            if (layout.BranchHwIndex) s.BranchHwIndex = c.ReadUInt64();
            if (nr > (ulong)(c.Remaining / 24))
                ThrowHelper.Format($"branch stack nr {nr} larger than the record", c.AbsoluteOffset);
            s.BranchEntries = ReadWords(ref c, nr * 3, "branch stack");
            if (layout.BranchCounters) s.BranchCounters = ReadWords(ref c, nr, "branch counters");
        }
        if (layout.Has(PerfSampleType.RegsUser))
        {
            s.UserRegsAbi = c.ReadUInt64();
            if (s.UserRegsAbi != 0) s.UserRegs = ReadWords(ref c, (ulong)layout.UserRegsCount, "user regs");
        }
        if (layout.Has(PerfSampleType.StackUser))
        {
            long at = c.AbsoluteOffset;
            ulong size = c.ReadUInt64();
            s.UserStackSize = size;
            if (size != 0)
            {
                if (size > (ulong)c.Remaining)
                    ThrowHelper.Format($"user stack size {size} larger than the {c.Remaining} bytes left in the record", at);
                s.UserStack = c.ReadBytes((int)size);
                s.UserStackDynSize = c.ReadUInt64();
            }
        }
        if ((layout.SampleType & (PerfSampleType.Weight | PerfSampleType.WeightStruct)) != 0) s.Weight = c.ReadUInt64();
        if (layout.Has(PerfSampleType.DataSrc)) s.DataSrc = c.ReadUInt64();
        if (layout.Has(PerfSampleType.Transaction)) s.Transaction = c.ReadUInt64();
        if (layout.Has(PerfSampleType.RegsIntr))
        {
            s.IntrRegsAbi = c.ReadUInt64();
            if (s.IntrRegsAbi != 0) s.IntrRegs = ReadWords(ref c, (ulong)layout.IntrRegsCount, "intr regs");
        }
        if (layout.Has(PerfSampleType.PhysAddr)) s.PhysAddr = c.ReadUInt64();
        if (layout.Has(PerfSampleType.Cgroup)) s.Cgroup = c.ReadUInt64();
        if (layout.Has(PerfSampleType.DataPageSize)) s.DataPageSize = c.ReadUInt64();
        if (layout.Has(PerfSampleType.CodePageSize)) s.CodePageSize = c.ReadUInt64();
        if (layout.Has(PerfSampleType.Aux))
        {
            long at = c.AbsoluteOffset;
            ulong size = c.ReadUInt64();
            if (size > (ulong)c.Remaining)
                ThrowHelper.Format($"AUX size {size} larger than the {c.Remaining} bytes left in the record", at);
            s.Aux = c.ReadBytes((int)size);
        }
        if (!c.IsAtEnd && layout.UnknownBits == 0)
            ThrowHelper.Format($"{c.Remaining} bytes left after the last field of sample_type 0x{(ulong)layout.SampleType:x}", c.AbsoluteOffset);
        var sid = new PerfSampleId
        {
            Pid = s.Pid, Tid = s.Tid, Time = s.Time, HasTime = layout.Has(PerfSampleType.Time), Id = s.Id,
            StreamId = s.StreamId, Cpu = s.Cpu, Identifier = s.Identifier,
        };
        s.Record = new PerfRecord(PerfRecordType.Sample, s.Record.Misc, rec, fileOffset, ev, sid, 0, TOrder.IsBigEndian);
    }

    /// <summary>A record's common view (trailer already parsed).</summary>
    public static PerfRecord MakeRecord(ReadOnlySpan<byte> rec, long fileOffset, PerfEvent? ev, PerfSampleId sid, int trailerSize) =>
        new((PerfRecordType)TOrder.UInt32(rec), TOrder.UInt16(rec[4..]), rec, fileOffset, ev, sid, trailerSize, TOrder.IsBigEndian);

    /// <summary>
    /// MMAP: <c>u32 pid, tid; u64 addr, len, pgoff; char filename[]</c>.
    /// MMAP2: <c>u32 pid, tid; u64 addr, len, pgoff; {u32 maj, min; u64 ino, ino_generation} |
    /// {u8 build_id_size, u8, u16; u8 build_id[20]}; u32 prot, flags; char filename[]</c>.
    /// The filename must hold a NUL inside the body (the kernel pads it to 8 with NULs).
    /// </summary>
    public void DecodeMmap(scoped in PerfRecord r, ref PerfMmap m)
    {
        var body = r.Body;
        var c = new SpanCursor<TOrder>(body, r.FileOffset + 8);
        m.Record = r;
        m.IsMmap2 = r.Type == PerfRecordType.Mmap2;
        m.Pid = c.ReadInt32();
        m.Tid = c.ReadInt32();
        m.Address = c.ReadUInt64();
        m.Length = c.ReadUInt64();
        m.PgOff = c.ReadUInt64();
        if (m.IsMmap2)
        {
            if ((r.Misc & PerfRecordMisc.MmapBuildId) != 0)
            {
                var u = c.ReadBytes(24);
                m.BuildId = u.Slice(4, Math.Min((int)u[0], 20));
            }
            else
            {
                m.Major = c.ReadUInt32();
                m.Minor = c.ReadUInt32();
                m.Inode = c.ReadUInt64();
                m.InodeGeneration = c.ReadUInt64();
            }
            m.Prot = c.ReadUInt32();
            m.Flags = c.ReadUInt32();
        }
        else
        {
            // MMAP has no prot: exec unless misc says it is a data mapping.
            m.Prot = (r.Misc & PerfRecordMisc.MmapData) != 0 ? 1u : 5u;
        }
        m.FileName = CString(ref c, "filename");
    }

    /// <summary>COMM: <c>u32 pid, tid; char comm[]</c>.</summary>
    public void DecodeComm(scoped in PerfRecord r, ref PerfComm m)
    {
        var c = new SpanCursor<TOrder>(r.Body, r.FileOffset + 8);
        m.Record = r;
        m.Pid = c.ReadInt32();
        m.Tid = c.ReadInt32();
        m.Comm = CString(ref c, "comm");
    }

    /// <summary>FORK / EXIT: <c>u32 pid, ppid, tid, ptid; u64 time</c>.</summary>
    public void DecodeTask(scoped in PerfRecord r, ref PerfTaskEvent t)
    {
        var c = new SpanCursor<TOrder>(r.Body, r.FileOffset + 8);
        t.Record = r;
        t.Pid = c.ReadInt32();
        t.ParentPid = c.ReadInt32();
        t.Tid = c.ReadInt32();
        t.ParentTid = c.ReadInt32();
        t.Time = c.ReadUInt64();
    }

    /// <summary>CALLCHAIN_DEFERRED: <c>u64 cookie, nr; u64 ips[nr]</c> (then the trailer, already cut off).</summary>
    public void DecodeDeferred(scoped in PerfRecord r, ref PerfDeferredCallchain d)
    {
        var c = new SpanCursor<TOrder>(r.Body, r.FileOffset + 8);
        d.Record = r;
        d.Cookie = c.ReadUInt64();
        ulong nr = c.ReadUInt64();
        d.Ips = ReadWords(ref c, nr, "deferred callchain nr");
        if (!c.IsAtEnd)
            ThrowHelper.Format($"{c.Remaining} bytes left after {nr} deferred callchain entries", c.AbsoluteOffset);
    }

    private static ReadOnlySpan<byte> CString(scoped ref SpanCursor<TOrder> c, string what)
    {
        var rest = c.RemainingSpan;
        int nul = rest.IndexOf((byte)0);
        if (nul < 0) ThrowHelper.Format($"{what} has no terminating NUL in its {rest.Length} bytes", c.AbsoluteOffset);
        c.Skip(rest.Length);
        return rest[..nul];
    }
}
