using System.Buffers.Binary;
using System.Text;
using TraceUnwind.Testing;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// Builds small <b>synthetic</b> deferred-callchain captures (fixtures/README.md, perf-defer-synthetic) from
/// pieces of the real <c>perf-defer/recur-defer</c> capture (Linux 7.2.13): its attr, its COMM/MMAP2 records
/// (bodies copied byte for byte), a kernel-mode sample and a user-mode sample (nr = 2) as templates, and
/// the user ips of a real deferred record. What the kernel never produced on the capture machine is arranged
/// here: records before their samples, missing or damaged records, duplicates from two <c>defer_output</c>
/// events, records in a later round on another CPU, <c>-a</c>'s separate <c>dummy:u</c> event.
/// Times are in ns after the real capture's sideband (so every mapping exists).
/// </summary>
public sealed class DeferredSynth
{
    public const int Pid = 360;
    /// <summary>After the capture's last MMAP2 (134.879 s) and before its EXIT.</summary>
    public const ulong T0 = 135_000_000_000;
    public const ulong CpuClockId = 1001, DummyId = 2001;

    /// <summary>Pieces of the real capture, read once.</summary>
    public sealed class Pieces
    {
        public required PerfSession Session { get; init; }
        /// <summary>(type, misc, body without header and trailer) of every COMM and MMAP/MMAP2 record, in time order, with its time.</summary>
        public required List<(PerfRecordType Type, ushort Misc, byte[] Body, ulong Time)> Sideband { get; init; }
        public required byte[] KernelSample { get; init; }
        public required byte[] UserSample { get; init; }
        /// <summary>User ips of the deferred record with cookie 0x11700000001 (leaf_work, 6 x recurse, main, libc, stack).</summary>
        public required ulong[] Ips { get; init; }
    }

    public static readonly Lazy<Pieces> Recur = new(LoadPieces);

    private static Pieces LoadPieces()
    {
        string path = Fixtures.Path("perf-defer", "recur-defer", "perf.data");
        var h = new PieceCollector();
        using (var fs = File.OpenRead(path))
        {
            var reader = new PerfRecordReader(fs, path);
            reader.Run(h);
            return new Pieces
            {
                Session = reader.Session,
                Sideband = h.Sideband,
                KernelSample = h.KernelSample!,
                UserSample = h.UserSample!,
                Ips = h.Ips!,
            };
        }
    }

    private sealed class PieceCollector : PerfRecordHandler
    {
        public readonly List<(PerfRecordType, ushort, byte[], ulong)> Sideband = new();
        public byte[]? KernelSample, UserSample;
        public ulong[]? Ips;

        private void Side(in PerfRecord r, ulong time) =>
            Sideband.Add((r.Type, r.Misc, r.Bytes[8..(r.Bytes.Length - r.TrailerSize)].ToArray(), time));

        public override void OnComm(in PerfComm c) => Side(c.Record, c.Record.SampleId.Time);
        public override void OnMmap(in PerfMmap m) => Side(m.Record, m.Record.SampleId.Time);

        public override void OnSample(in PerfSample s)
        {
            if (KernelSample is null && s.Callchain.Length > 10 && s.HasDeferredUserCallchain) KernelSample = s.Record.Bytes.ToArray();
            if (UserSample is null && s.Callchain.Length == 2 && s.HasDeferredUserCallchain) UserSample = s.Record.Bytes.ToArray();
        }

        public override void OnDeferredCallchain(in PerfDeferredCallchain d)
        {
            if (d.Cookie == 0x11700000001) Ips = d.Ips.ToArray();
        }
    }

    private readonly Pieces _p = Recur.Value;
    private readonly MemoryStream _ms = new();
    private readonly PerfDataWriter _w;
    private readonly PerfSampleParser _parser;
    private readonly PerfEventAttr _sampleAttr;
    private readonly PerfEventAttr? _dummyAttr;
    private readonly PerfEventAttr? _noSampleIdAttr;

    /// <param name="systemWide">
    /// <c>perf record -a</c>'s layout: <c>cpu-clock</c> (defer_callchain; IDENTIFIER|CPU added to its sample_type) and a
    /// <c>dummy:u</c> event (defer_output, sideband), records carry the dummy's id. Otherwise the capture's own single event.
    /// </param>
    /// <param name="deferOutputOnBoth">With <paramref name="systemWide"/>: defer_output on both events (duplicated records).</param>
    /// <param name="sampleIdAll">False: no sample_id trailer at all (records carry no tid).</param>
    public DeferredSynth(bool systemWide = false, bool deferOutputOnBoth = false, bool sampleIdAll = true)
    {
        _w = new PerfDataWriter(_ms);
        _parser = new PerfSampleParser(_p.Session);
        var real = _p.Session.Events[0];
        if (systemWide)
        {
            _sampleAttr = real.Attr.Clone();
            _sampleAttr.SampleType |= PerfSampleType.Cpu | PerfSampleType.Identifier;
            _sampleAttr.Flags = (_sampleAttr.Flags | PerfAttrFlags.DeferCallchain) & ~(PerfAttrFlags.DeferOutput | PerfAttrFlags.Mmap | PerfAttrFlags.Comm | PerfAttrFlags.Task | PerfAttrFlags.Mmap2);
            if (deferOutputOnBoth) _sampleAttr.Flags |= PerfAttrFlags.DeferOutput;
            _dummyAttr = new PerfEventAttr
            {
                Type = (uint)PerfEventType.Software, Config = 9, SamplePeriod = 1,
                SampleType = PerfSampleType.Tid | PerfSampleType.Time | PerfSampleType.Cpu | PerfSampleType.Identifier,
                Flags = PerfAttrFlags.SampleIdAll | PerfAttrFlags.Mmap | PerfAttrFlags.Comm | PerfAttrFlags.Task | PerfAttrFlags.Mmap2
                    | PerfAttrFlags.ExcludeKernel | PerfAttrFlags.DeferOutput,
            };
            _w.AddEvent(_sampleAttr, [CpuClockId, CpuClockId + 1], "cpu-clock");
            _w.AddEvent(_dummyAttr, [DummyId, DummyId + 1], "dummy:u");
        }
        else
        {
            _sampleAttr = real.Attr;
            if (!sampleIdAll)
            {
                _sampleAttr = real.Attr.Clone();
                _sampleAttr.Flags &= ~PerfAttrFlags.SampleIdAll;
                _noSampleIdAttr = _sampleAttr;
            }
            _w.AddEvent(_sampleAttr, real.Ids, real.Name);
        }
        // The capture's sideband (COMM, MMAP2 of pid 360 and the kernel map), on the sideband event.
        foreach (var (type, misc, body, time) in _p.Sideband)
            Emit(type, misc, body, SideAttr, -1, -1, time, 0, SideId, fromBody: true);
    }

    private PerfEventAttr SideAttr => _dummyAttr ?? _sampleAttr;
    private ulong SideId => _dummyAttr is null ? 0 : DummyId;

    public PerfEventAttr SampleAttr => _sampleAttr;

    /// <summary>A sample from a template with its tid, time, cpu and the chain's cookie replaced (or a chain given outright).</summary>
    public DeferredSynth Sample(int tid, ulong time, ulong cookie, bool userMode = false, int cpu = 0, ulong[]? chain = null)
    {
        Assert.True(_parser.TryParseSample(userMode ? _p.UserSample : _p.KernelSample, 0, out var s, out string? err), err);
        var cc = chain ?? s.Callchain.ToArray();
        if (chain is null) cc[^1] = cookie;
        s.Callchain = cc;
        s.Pid = Pid;
        s.Tid = tid;
        s.Time = time;
        s.Cpu = cpu;
        s.Identifier = CpuClockId + (ulong)cpu;
        _w.WriteSample(s, _sampleAttr);
        return this;
    }

    /// <summary>PERF_RECORD_CALLCHAIN_DEFERRED {cookie, nr, ips} with the trailer of <paramref name="onSampleEvent"/>'s or the sideband event.</summary>
    public DeferredSynth Deferred(int tid, ulong time, ulong cookie, ulong[]? ips = null, int cpu = 0, bool onSampleEvent = false, ulong? nrOverride = null)
    {
        ips ??= _p.Ips;
        var body = new byte[16 + 8 * ips.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(body, cookie);
        BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(8), nrOverride ?? (ulong)ips.Length);
        for (int i = 0; i < ips.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(16 + 8 * i), ips[i]);
        var attr = onSampleEvent ? _sampleAttr : SideAttr;
        ulong id = onSampleEvent ? CpuClockId + (ulong)cpu : SideId == 0 ? 0 : SideId + (ulong)cpu;
        Emit(PerfRecordType.CallchainDeferred, PerfRecordMisc.User, body, attr, Pid, tid, time, cpu, id);
        return this;
    }

    /// <summary>PERF_RECORD_EXIT of <paramref name="tid"/>.</summary>
    public DeferredSynth Exit(int tid, ulong time)
    {
        var body = new byte[24];
        BinaryPrimitives.WriteInt32LittleEndian(body, Pid);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(4), Pid);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(8), tid);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(12), Pid);
        BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(16), time);
        Emit(PerfRecordType.Exit, 0, body, SideAttr, Pid, tid, time, 0, SideId);
        return this;
    }

    /// <summary>PERF_RECORD_COMM (a thread name; tid's comm).</summary>
    public DeferredSynth Comm(int tid, string comm, ulong time)
    {
        var name = Encoding.UTF8.GetBytes(comm);
        var body = new byte[8 + ((name.Length + 8) & ~7)];
        BinaryPrimitives.WriteInt32LittleEndian(body, Pid);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(4), tid);
        name.CopyTo(body, 8);
        Emit(PerfRecordType.Comm, 0, body, SideAttr, Pid, tid, time, 0, SideId);
        return this;
    }

    public DeferredSynth Round()
    {
        _w.WriteHeaderOnly(PerfRecordType.FinishedRound);
        return this;
    }

    public byte[] Build()
    {
        _w.CopyRawFeatures(_p.Session);
        _w.Complete();
        return _ms.ToArray();
    }

    /// <summary>Header + body + the sample_id trailer <paramref name="attr"/> asks for.</summary>
    private void Emit(PerfRecordType type, ushort misc, byte[] body, PerfEventAttr attr, int pid, int tid, ulong time, int cpu, ulong id, bool fromBody = false)
    {
        if (fromBody)
        {
            // COMM / MMAP / MMAP2 bodies start with pid, tid.
            pid = BinaryPrimitives.ReadInt32LittleEndian(body);
            tid = BinaryPrimitives.ReadInt32LittleEndian(body.AsSpan(4));
        }
        var t = attr.SampleType;
        var trailer = new List<byte>();
        if (attr.SampleIdAll)
        {
            void U64(ulong v) { var b = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); trailer.AddRange(b); }
            if ((t & PerfSampleType.Tid) != 0) U64((uint)pid | ((ulong)(uint)tid << 32));
            if ((t & PerfSampleType.Time) != 0) U64(time);
            if ((t & PerfSampleType.Id) != 0) U64(id);
            if ((t & PerfSampleType.StreamId) != 0) U64(id);
            if ((t & PerfSampleType.Cpu) != 0) U64((uint)cpu);
            if ((t & PerfSampleType.Identifier) != 0) U64(id);
        }
        var rec = new byte[8 + body.Length + trailer.Count];
        BinaryPrimitives.WriteUInt32LittleEndian(rec, (uint)type);
        BinaryPrimitives.WriteUInt16LittleEndian(rec.AsSpan(4), misc);
        BinaryPrimitives.WriteUInt16LittleEndian(rec.AsSpan(6), (ushort)rec.Length);
        body.CopyTo(rec, 8);
        trailer.CopyTo(rec, 8 + body.Length);
        _w.WriteRecord(rec);
    }
}
