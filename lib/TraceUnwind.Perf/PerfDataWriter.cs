using System.Text;

namespace TraceUnwind.Perf;

/// <summary>
/// Writes a file-mode perf.data (<c>PERFILE2</c>, or <c>2ELIFREP</c> for big-endian): the header,
/// attrs with their ids, records, and feature sections — what <c>perf inject</c> writes, so perf
/// and this reader can read it back. Layout:
/// <code>
///   0    perf_file_header (104 bytes; patched in Complete())
///   104  ids of every event (u64 arrays)
///        attrs: { perf_event_attr (attr_size - 16); perf_file_section ids; }[n]
///        data: the records, as written
///        feature table: { u64 offset, u64 size }[one per set bit, ascending]
///        feature payloads
/// </code>
/// Events are added first; the first record fixes them. Records are written in the writer's byte
/// order: typed writers (<see cref="WriteSample"/>, <see cref="WriteMmap"/>, ...) encode decoded
/// records, appending the sample_id trailer their event's attr asks for; <see cref="WriteRecord"/>
/// copies raw bytes that are already in the writer's order. The output must be seekable.
/// </summary>
public sealed class PerfDataWriter : IDisposable
{
    private const int HeaderSize = 104;
    private const int NameAlign = 64;

    private readonly Stream _out;
    private readonly bool _be;
    private readonly List<(PerfEventAttr Attr, ulong[] Ids, string? Name)> _events = new();
    private readonly SortedDictionary<int, byte[]> _features = new();
    private readonly byte[] _buf = new byte[1 << 17];
    private long _dataOffset = -1;
    private long _dataSize;
    private int _attrSize;
    private bool _completed;

    /// <param name="output">A seekable, writable stream positioned at its start.</param>
    /// <param name="bigEndian">Write a big-endian (<c>2ELIFREP</c>) file.</param>
    public PerfDataWriter(Stream output, bool bigEndian = false)
    {
        _out = output ?? throw new ArgumentNullException(nameof(output));
        if (!output.CanSeek || !output.CanWrite) throw new ArgumentException("perf.data is written to a seekable stream (the header is patched at the end)", nameof(output));
        _be = bigEndian;
        _out.Position = 0;
        _out.Write(new byte[HeaderSize]);
    }

    public bool IsBigEndian => _be;
    public int EventCount => _events.Count;
    /// <summary>Bytes of records written so far.</summary>
    public long DataSize => _dataSize;

    /// <summary>Adds an event (attr, its sample ids, its name for EVENT_DESC). Returns its index.</summary>
    public int AddEvent(PerfEventAttr attr, IReadOnlyList<ulong> ids, string? name = null)
    {
        if (_dataOffset >= 0) throw new InvalidOperationException("events are added before the first record");
        _events.Add((attr, ids.ToArray(), name));
        return _events.Count - 1;
    }

    /// <summary>Adds every event of <paramref name="session"/> (attrs, ids, names).</summary>
    public void AddEvents(PerfSession session)
    {
        foreach (var e in session.Events) AddEvent(e.Attr, e.Ids, e.Name);
    }

    private ByteWriter W(Span<byte> s) => new(s, _be);

    /// <summary>Writes the ids and the attrs section; called by the first record (or <see cref="Complete"/>).</summary>
    private void BeginData()
    {
        if (_dataOffset >= 0) return;
        // Every attr gets the largest size among them, so one attr_size fits all (perf writes sizeof(attr)).
        // Not more: perf refuses attrs larger than its own struct ("file uses a more recent and unsupported
        // ABI"; perf 6.1's is 128 bytes), so an attr read at 128 bytes is written at 128.
        uint attrBytes = (uint)(_events.Count == 0 ? PerfEventAttr.SizeKnown : PerfEventAttr.SizeVer0);
        foreach (var (a, _, _) in _events) attrBytes = Math.Max(attrBytes, Math.Max(a.Size, (uint)PerfEventAttr.SizeVer0));
        attrBytes = (attrBytes + 7) & ~7u;
        _attrSize = (int)attrBytes + 16;
        var idOffsets = new long[_events.Count];
        for (int i = 0; i < _events.Count; i++)
        {
            idOffsets[i] = _out.Position;
            foreach (ulong id in _events[i].Ids) WriteU64(id);
        }
        long attrsOffset = _out.Position;
        var entry = new byte[_attrSize];
        for (int i = 0; i < _events.Count; i++)
        {
            var (a, ids, _) = _events[i];
            Array.Clear(entry);
            var copy = a.Clone();
            copy.Size = Math.Max(copy.Size, (uint)PerfEventAttr.SizeVer0);
            copy.Encode(entry.AsSpan(0, (int)Math.Min(copy.Size, attrBytes)), _be);
            var w = W(entry);
            w.U64((int)attrBytes, (ulong)(ids.Length == 0 ? 0 : idOffsets[i]));
            w.U64((int)attrBytes + 8, (ulong)ids.Length * 8);
            _out.Write(entry);
        }
        _attrsOffset = attrsOffset;
        _attrsSize = _out.Position - attrsOffset;
        _dataOffset = _out.Position;
    }

    private long _attrsOffset, _attrsSize;

    private void WriteU64(ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        W(b).U64(0, v);
        _out.Write(b);
    }

    /// <summary>Copies a raw record (header included) that is in this writer's byte order.</summary>
    public void WriteRecord(ReadOnlySpan<byte> record)
    {
        if (record.Length < 8 || record.Length > 65535) throw new ArgumentException($"a record is 8..65535 bytes, not {record.Length}", nameof(record));
        BeginData();
        _out.Write(record);
        _dataSize += record.Length;
    }

    /// <summary>Writes the record built in <c>_buf[0..size)</c> after filling in its header.</summary>
    private void Emit(PerfRecordType type, ushort misc, int size)
    {
        if (size > 65535) throw new ArgumentException($"record of {size} bytes is larger than a perf record can be");
        var w = W(_buf);
        w.U32(0, (uint)type);
        w.U16(4, misc);
        w.U16(6, (ushort)size);
        WriteRecord(_buf.AsSpan(0, size));
    }

    // ------------------------------------------------------------ typed records

    /// <summary>
    /// Encodes a sample in kernel order for <paramref name="attr"/>'s sample_type (by default the
    /// sample's event's attr); fields the sample_type lacks are not written.
    /// </summary>
    public void WriteSample(in PerfSample s, PerfEventAttr? attr = null)
    {
        attr ??= s.Event.Attr;
        var layout = new SampleLayout(attr);
        int p = 8;
        if (layout.Has(PerfSampleType.Identifier)) Put(ref p, s.Identifier);
        if (layout.Has(PerfSampleType.Ip)) Put(ref p, s.Ip);
        if (layout.Has(PerfSampleType.Tid)) Put32(ref p, (uint)s.Pid, (uint)s.Tid);
        if (layout.Has(PerfSampleType.Time)) Put(ref p, s.Time);
        if (layout.Has(PerfSampleType.Addr)) Put(ref p, s.Addr);
        if (layout.Has(PerfSampleType.Id)) Put(ref p, s.Id);
        if (layout.Has(PerfSampleType.StreamId)) Put(ref p, s.StreamId);
        if (layout.Has(PerfSampleType.Cpu)) Put32(ref p, (uint)s.Cpu, s.CpuReserved);
        if (layout.Has(PerfSampleType.Period)) Put(ref p, s.Period);
        if (layout.Has(PerfSampleType.Read)) Put(ref p, s.Read);
        if (layout.Has(PerfSampleType.Callchain)) { Put(ref p, (ulong)s.Callchain.Length); Put(ref p, s.Callchain); }
        if (layout.Has(PerfSampleType.Raw))
        {
            W(_buf).U32(p, (uint)s.Raw.Length);
            s.Raw.CopyTo(_buf.AsSpan(p + 4));
            p += 4 + s.Raw.Length;
        }
        if (layout.Has(PerfSampleType.BranchStack))
        {
            Put(ref p, s.BranchNr);
            if (layout.BranchHwIndex) Put(ref p, s.BranchHwIndex);
            Put(ref p, s.BranchEntries);
            if (layout.BranchCounters) Put(ref p, s.BranchCounters);
        }
        if (layout.Has(PerfSampleType.RegsUser)) { Put(ref p, s.UserRegsAbi); if (s.UserRegsAbi != 0) Put(ref p, s.UserRegs); }
        if (layout.Has(PerfSampleType.StackUser))
        {
            Put(ref p, (ulong)s.UserStack.Length);
            if (s.UserStack.Length > 0)
            {
                s.UserStack.CopyTo(_buf.AsSpan(p));
                p += s.UserStack.Length;
                Put(ref p, s.UserStackDynSize);
            }
        }
        if ((layout.SampleType & (PerfSampleType.Weight | PerfSampleType.WeightStruct)) != 0) Put(ref p, s.Weight);
        if (layout.Has(PerfSampleType.DataSrc)) Put(ref p, s.DataSrc);
        if (layout.Has(PerfSampleType.Transaction)) Put(ref p, s.Transaction);
        if (layout.Has(PerfSampleType.RegsIntr)) { Put(ref p, s.IntrRegsAbi); if (s.IntrRegsAbi != 0) Put(ref p, s.IntrRegs); }
        if (layout.Has(PerfSampleType.PhysAddr)) Put(ref p, s.PhysAddr);
        if (layout.Has(PerfSampleType.Cgroup)) Put(ref p, s.Cgroup);
        if (layout.Has(PerfSampleType.DataPageSize)) Put(ref p, s.DataPageSize);
        if (layout.Has(PerfSampleType.CodePageSize)) Put(ref p, s.CodePageSize);
        if (layout.Has(PerfSampleType.Aux))
        {
            Put(ref p, (ulong)s.Aux.Length);
            s.Aux.CopyTo(_buf.AsSpan(p));
            p += s.Aux.Length;
        }
        Emit(PerfRecordType.Sample, s.Record.Misc, p);
    }

    private void Put(ref int p, ulong v)
    {
        CheckRoom(p, 8);
        W(_buf).U64(p, v);
        p += 8;
    }

    private void Put32(ref int p, uint a, uint b)
    {
        CheckRoom(p, 8);
        var w = W(_buf);
        w.U32(p, a);
        w.U32(p + 4, b);
        p += 8;
    }

    private void Put(ref int p, ReadOnlySpan<ulong> v)
    {
        CheckRoom(p, (long)v.Length * 8);
        foreach (ulong x in v) Put(ref p, x);
    }

    private void CheckRoom(int p, long bytes)
    {
        if (p + bytes > 65535) throw new ArgumentException("the sample does not fit in a perf record (65535 bytes)");
    }

    /// <summary>Appends the sample_id trailer <paramref name="attr"/> asks for (nothing without sample_id_all).</summary>
    private int Trailer(int p, PerfEventAttr? attr, in PerfSampleId sid)
    {
        if (attr is null || !attr.SampleIdAll) return p;
        var w = W(_buf);
        var t = attr.SampleType;
        if ((t & PerfSampleType.Tid) != 0) { w.U32(p, (uint)sid.Pid); w.U32(p + 4, (uint)sid.Tid); p += 8; }
        if ((t & PerfSampleType.Time) != 0) { w.U64(p, sid.Time); p += 8; }
        if ((t & PerfSampleType.Id) != 0) { w.U64(p, sid.Id); p += 8; }
        if ((t & PerfSampleType.StreamId) != 0) { w.U64(p, sid.StreamId); p += 8; }
        if ((t & PerfSampleType.Cpu) != 0) { w.U32(p, (uint)sid.Cpu); w.U32(p + 4, 0); p += 8; }
        if ((t & PerfSampleType.Identifier) != 0) { w.U64(p, sid.Identifier); p += 8; }
        return p;
    }

    /// <summary>Copies a NUL-terminated string padded with NULs to a multiple of 8 (at least one NUL).</summary>
    private int CString(int p, ReadOnlySpan<byte> s)
    {
        s.CopyTo(_buf.AsSpan(p));
        int len = (s.Length + 1 + 7) & ~7;
        _buf.AsSpan(p + s.Length, len - s.Length).Clear();
        return p + len;
    }

    /// <summary>MMAP or MMAP2 (plain or build-id form, as <paramref name="m"/> is), with its trailer.</summary>
    public void WriteMmap(in PerfMmap m)
    {
        var w = W(_buf);
        w.U32(8, (uint)m.Pid); w.U32(12, (uint)m.Tid);
        w.U64(16, m.Address); w.U64(24, m.Length); w.U64(32, m.PgOff);
        int p = 40;
        if (m.IsMmap2)
        {
            if (m.HasBuildId)
            {
                _buf.AsSpan(40, 24).Clear();
                _buf[40] = (byte)m.BuildId.Length;
                m.BuildId.CopyTo(_buf.AsSpan(44));
            }
            else
            {
                w.U32(40, m.Major); w.U32(44, m.Minor); w.U64(48, m.Inode); w.U64(56, m.InodeGeneration);
            }
            w.U32(64, m.Prot); w.U32(68, m.Flags);
            p = 72;
        }
        p = CString(p, m.FileName);
        p = Trailer(p, m.Record.Event?.Attr, m.Record.SampleId);
        Emit(m.IsMmap2 ? PerfRecordType.Mmap2 : PerfRecordType.Mmap, m.Record.Misc, p);
    }

    public void WriteComm(in PerfComm c)
    {
        var w = W(_buf);
        w.U32(8, (uint)c.Pid); w.U32(12, (uint)c.Tid);
        int p = CString(16, c.Comm);
        p = Trailer(p, c.Record.Event?.Attr, c.Record.SampleId);
        Emit(PerfRecordType.Comm, c.Record.Misc, p);
    }

    /// <summary>FORK or EXIT (by <c>t.Record.Type</c>).</summary>
    public void WriteTask(in PerfTaskEvent t)
    {
        var w = W(_buf);
        w.U32(8, (uint)t.Pid); w.U32(12, (uint)t.ParentPid); w.U32(16, (uint)t.Tid); w.U32(20, (uint)t.ParentTid);
        w.U64(24, t.Time);
        int p = Trailer(32, t.Record.Event?.Attr, t.Record.SampleId);
        Emit(t.Record.Type == PerfRecordType.Exit ? PerfRecordType.Exit : PerfRecordType.Fork, t.Record.Misc, p);
    }

    public void WriteDeferredCallchain(in PerfDeferredCallchain d)
    {
        var w = W(_buf);
        w.U64(8, d.Cookie);
        w.U64(16, (ulong)d.Ips.Length);
        int p = 24;
        foreach (ulong ip in d.Ips) { w.U64(p, ip); p += 8; }
        p = Trailer(p, d.Record.Event?.Attr, d.Record.SampleId);
        Emit(PerfRecordType.CallchainDeferred, d.Record.Misc, p);
    }

    /// <summary>A record of only a header (FINISHED_ROUND, FINISHED_INIT).</summary>
    public void WriteHeaderOnly(PerfRecordType type) => Emit(type, 0, 8);

    // ------------------------------------------------------------ features

    /// <summary>Sets a feature payload as raw bytes in this writer's byte order (replaces an earlier one).</summary>
    public void SetRawFeature(PerfFeature feature, ReadOnlySpan<byte> payload) => _features[(int)feature] = payload.ToArray();

    /// <summary>Copies every feature payload of <paramref name="session"/> (same byte order only; EVENT_DESC is rebuilt from the events).</summary>
    public void CopyRawFeatures(PerfSession session)
    {
        if (session.IsBigEndian != _be) throw new InvalidOperationException("raw feature payloads are in the input's byte order; re-encode them for another order");
        foreach (var (f, payload) in session.RawFeatures)
            if (f != PerfFeature.EventDesc) SetRawFeature(f, payload);
    }

    /// <summary>HOSTNAME, OSRELEASE, VERSION, ARCH, CPUDESC, CPUID: a perf string.</summary>
    public void SetStringFeature(PerfFeature feature, string value)
    {
        var ms = new MemoryStream();
        PutString(ms, value);
        _features[(int)feature] = ms.ToArray();
    }

    public void SetNrCpus(int available, int online)
    {
        var b = new byte[8];
        var w = W(b);
        w.U32(0, (uint)available); w.U32(4, (uint)online);
        _features[(int)PerfFeature.NrCpus] = b;
    }

    public void SetCmdline(IReadOnlyList<string> argv)
    {
        var ms = new MemoryStream();
        PutU32(ms, (uint)argv.Count);
        foreach (var a in argv) PutString(ms, a);
        _features[(int)PerfFeature.Cmdline] = ms.ToArray();
    }

    public void SetSampleTime(ulong first, ulong last)
    {
        var b = new byte[16];
        var w = W(b);
        w.U64(0, first); w.U64(8, last);
        _features[(int)PerfFeature.SampleTime] = b;
    }

    /// <summary>BUILD_ID: one <c>perf_record_header_build_id</c> per entry.</summary>
    public void SetBuildIds(IEnumerable<PerfBuildId> buildIds)
    {
        var ms = new MemoryStream();
        foreach (var b in buildIds)
        {
            byte[] name = Encoding.UTF8.GetBytes(b.FileName);
            int nameLen = (name.Length + 1 + NameAlign - 1) / NameAlign * NameAlign;
            var e = new byte[36 + nameLen];
            var w = W(e);
            w.U32(0, 0);
            w.U16(4, (ushort)(b.Misc | PerfRecordMisc.BuildIdSize));
            w.U16(6, (ushort)e.Length);
            w.U32(8, (uint)b.Pid);
            b.BuildId.AsSpan(0, Math.Min(20, b.BuildId.Length)).CopyTo(e.AsSpan(12));
            e[32] = (byte)Math.Min(20, b.BuildId.Length);
            name.CopyTo(e.AsSpan(36));
            ms.Write(e);
        }
        _features[(int)PerfFeature.BuildId] = ms.ToArray();
    }

    /// <summary><c>u32 nr; u32 attr_size; { attr; u32 nr_ids; string name; u64 ids[] }[nr]</c>, from the events.</summary>
    private byte[] EventDesc()
    {
        var ms = new MemoryStream();
        int attrBytes = _attrSize - 16;
        PutU32(ms, (uint)_events.Count);
        PutU32(ms, (uint)attrBytes);
        var buf = new byte[attrBytes];
        foreach (var (a, ids, name) in _events)
        {
            Array.Clear(buf);
            a.Encode(buf.AsSpan(0, (int)Math.Min(Math.Max(a.Size, (uint)PerfEventAttr.SizeVer0), (uint)attrBytes)), _be);
            ms.Write(buf);
            PutU32(ms, (uint)ids.Length);
            PutString(ms, name ?? a.DefaultName());
            foreach (ulong id in ids)
            {
                var b = new byte[8];
                W(b).U64(0, id);
                ms.Write(b);
            }
        }
        return ms.ToArray();
    }

    private void PutU32(Stream s, uint v)
    {
        var b = new byte[4];
        W(b).U32(0, v);
        s.Write(b);
    }

    /// <summary>perf's <c>do_write_string</c>: u32 len (the string plus NUL, padded to 64), then the bytes.</summary>
    private void PutString(Stream s, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        int len = (bytes.Length + 1 + NameAlign - 1) / NameAlign * NameAlign;
        PutU32(s, (uint)len);
        s.Write(bytes);
        s.Write(new byte[len - bytes.Length]);
    }

    /// <summary>Writes the feature sections and the header. The writer cannot be used afterwards.</summary>
    public void Complete()
    {
        if (_completed) return;
        BeginData();
        if (_events.Count > 0 && !_features.ContainsKey((int)PerfFeature.EventDesc)) _features[(int)PerfFeature.EventDesc] = EventDesc();
        long tableOffset = _dataOffset + _dataSize;
        _out.Position = tableOffset;
        var table = new byte[16 * _features.Count];
        long payloadAt = tableOffset + table.Length;
        int n = 0;
        foreach (var (_, payload) in _features)
        {
            var w = W(table.AsSpan(n * 16));
            w.U64(0, (ulong)payloadAt);
            w.U64(8, (ulong)payload.Length);
            payloadAt += payload.Length;
            n++;
        }
        _out.Write(table);
        foreach (var (_, payload) in _features) _out.Write(payload);

        var h = new byte[HeaderSize];
        var hw = W(h);
        (_be ? "2ELIFREP"u8 : "PERFILE2"u8).CopyTo(h);
        // The magic is the same 8 bytes read as a u64 in the file's order: PERFILE2 little-endian.
        hw.U64(8, HeaderSize);
        hw.U64(16, (ulong)_attrSize);
        hw.U64(24, (ulong)_attrsOffset); hw.U64(32, (ulong)_attrsSize);
        hw.U64(40, (ulong)_dataOffset); hw.U64(48, (ulong)_dataSize);
        var bitmap = new ulong[4];
        foreach (var f in _features.Keys) bitmap[f >> 6] |= 1UL << (f & 63);
        for (int i = 0; i < 4; i++) hw.U64(72 + 8 * i, bitmap[i]);
        _out.Position = 0;
        _out.Write(h);
        _out.Flush();
        _out.Position = _out.Length;
        _completed = true;
    }

    public void Dispose() => Complete();
}
