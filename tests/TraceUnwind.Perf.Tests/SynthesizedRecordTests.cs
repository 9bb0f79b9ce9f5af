using System.Buffers.Binary;
using TraceUnwind.Testing;
using ZstdSharp;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// Records the captures here do not contain (synthetic, built byte by byte from the uapi layouts):
/// LOST, LOST_SAMPLES, THROTTLE/UNTHROTTLE, KSYMBOL, BPF_EVENT, CGROUP, AUXTRACE with its trailing
/// payload, and COMPRESSED/COMPRESSED2 streams cut at arbitrary points (one zstd stream, records
/// straddling compressed records, several frames).
/// </summary>
public sealed class SynthesizedRecordTests
{
    // sample_type TID|TIME|CPU|IDENTIFIER: the trailer is {pid,tid}{time}{cpu,res}{identifier} (32 bytes).
    private static readonly PerfEventAttr Attr = new()
    {
        Type = 1, SampleType = PerfSampleType.Ip | PerfSampleType.Tid | PerfSampleType.Time | PerfSampleType.Cpu | PerfSampleType.Identifier | PerfSampleType.Period,
        Flags = PerfAttrFlags.SampleIdAll,
    };

    private static byte[] Rec(PerfRecordType type, ushort misc, byte[] body, ulong time, bool trailer = true)
    {
        int size = 8 + body.Length + (trailer ? 32 : 0);
        var b = new byte[size];
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)type);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(4), misc);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(6), (ushort)size);
        body.CopyTo(b, 8);
        if (trailer)
        {
            int p = 8 + body.Length;
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(p), 42);
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(p + 4), 43);
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(p + 8), time);
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(p + 16), 1);
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(p + 24), 77);
        }
        return b;
    }

    private static byte[] U64s(params ulong[] v)
    {
        var b = new byte[v.Length * 8];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(i * 8), v[i]);
        return b;
    }

    private static byte[] Sample(ulong ip, ulong time)
    {
        // IDENTIFIER, IP, TID, TIME, CPU, PERIOD
        var body = U64s(77, ip, 0, time, 0, 1000);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(16), 42);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(20), 43);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(32), 1);
        return Rec(PerfRecordType.Sample, PerfRecordMisc.User, body, 0, trailer: false);
    }

    private sealed class Seen : PerfRecordHandler
    {
        public readonly List<(PerfRecordType Type, ulong Time, int Tid, int Cpu, ulong Identifier, int BodyLength)> Others = new();
        public readonly List<(ulong Ip, ulong Time)> Samples = new();
        public override void OnOtherRecord(in PerfRecord r) =>
            Others.Add((r.Type, r.SampleId.Time, r.SampleId.Tid, r.SampleId.Cpu, r.SampleId.Identifier, r.Body.Length));
        public override void OnSample(in PerfSample s) => Samples.Add((s.Ip, s.Time));
    }

    [Fact]
    public void KernelSideRecordsAndAuxtracePayload()
    {
        var ksymName = "bpf_prog_6deef7357e7b4530_sd_fw_egress\0\0"u8.ToArray(); // NUL-padded to 8
        var ksym = new byte[16 + ksymName.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(ksym, 0xffffffffc0001000);
        BinaryPrimitives.WriteUInt32LittleEndian(ksym.AsSpan(8), 0x1a0);
        BinaryPrimitives.WriteUInt16LittleEndian(ksym.AsSpan(12), 1);
        ksymName.CopyTo(ksym, 16);
        var bpf = new byte[16];
        BinaryPrimitives.WriteUInt16LittleEndian(bpf, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(bpf.AsSpan(4), 57);
        var cgroup = U64s(0x1234).Concat("/system.slice\0\0\0"u8.ToArray()).ToArray();
        // AUXTRACE: { u64 size, offset, reference; u32 idx, tid, cpu, reserved } + size payload bytes not in header.size.
        var aux = U64s(40, 0, 0x99, 0, 0);
        var payload = Enumerable.Repeat((byte)0x09, 40).ToArray(); // would read as SAMPLE headers if not skipped

        var ms2 = new MemoryStream();
        var w2 = new PerfDataWriter(ms2);
        w2.AddEvent(Attr, [77], "cpu-clock");
        foreach (var r in new[]
        {
            Rec(PerfRecordType.Lost, 0, U64s(77, 7), 100), Rec(PerfRecordType.LostSamples, 0, U64s(11), 110),
            Rec(PerfRecordType.Throttle, 0, U64s(120, 77, 0), 120), Rec(PerfRecordType.Unthrottle, 0, U64s(130, 77, 0), 130),
            Rec(PerfRecordType.Ksymbol, 0, ksym, 140), Rec(PerfRecordType.BpfEvent, 0, bpf, 150), Rec(PerfRecordType.Cgroup, 0, cgroup, 160),
            Sample(0x401000, 170),
        }) w2.WriteRecord(r);
        // AUXTRACE and its payload: handed to the writer as one block of 48 + 40 bytes whose header says 48.
        var auxRec = Rec(PerfRecordType.Auxtrace, 0, aux, 0, trailer: false);
        w2.WriteRecord(auxRec.Concat(payload).ToArray());
        w2.WriteRecord(Sample(0x402000, 180));
        w2.WriteHeaderOnly(PerfRecordType.FinishedRound);
        w2.Complete();

        var seen = new Seen();
        var reader = new PerfRecordReader(new MemoryStream(ms2.ToArray()), "synthetic");
        reader.Run(seen);
        Assert.Equal(0, reader.Tally.ErrorCount);
        Assert.Equal(7, reader.Tally.CountOf("perf.lost-events"));
        Assert.Equal(11, reader.Tally.CountOf("perf.lost-samples"));
        Assert.Equal([(0x401000UL, 170UL), (0x402000UL, 180UL)], seen.Samples);
        var kernelSide = seen.Others.Where(o => o.Type < PerfRecordType.HeaderAttr).ToList();
        Assert.Equal(
            [PerfRecordType.Lost, PerfRecordType.LostSamples, PerfRecordType.Throttle, PerfRecordType.Unthrottle, PerfRecordType.Ksymbol, PerfRecordType.BpfEvent, PerfRecordType.Cgroup],
            kernelSide.Select(o => o.Type));
        Assert.Equal([100UL, 110, 120, 130, 140, 150, 160], kernelSide.Select(o => o.Time));
        Assert.All(kernelSide, o => Assert.Equal((43, 1, 77UL), (o.Tid, o.Cpu, o.Identifier)));
        Assert.Contains(seen.Others, o => o.Type == PerfRecordType.Auxtrace);
        // One round only: at its FINISHED_ROUND nothing is due yet (perf's first flush has limit 0),
        // so the kernel records come at the end-of-input flush, after the round marker.
        int round = seen.Others.FindIndex(o => o.Type == PerfRecordType.FinishedRound);
        Assert.True(round >= 0 && round < seen.Others.FindIndex(o => o.Type == PerfRecordType.Lost));
    }

    [Fact]
    public void DamagedKernelSideRecordsAreCounted()
    {
        var ms = new MemoryStream();
        var w = new PerfDataWriter(ms);
        w.AddEvent(Attr, [77], "cpu-clock");
        w.WriteRecord(Rec(PerfRecordType.Lost, 0, U64s(77), 100));                                  // body too short
        w.WriteRecord(Rec(PerfRecordType.Ksymbol, 0, U64s(0xffffffffc0001000, 0x0001_0000_01a0), 140)); // no name
        w.WriteRecord(Rec(PerfRecordType.Mmap2, 0, new byte[64 + 8].Select(_ => (byte)'a').ToArray(), 150)); // filename without NUL
        w.WriteRecord(Rec(PerfRecordType.Comm, 0, [], 150, trailer: false));                              // shorter than its trailer
        w.WriteRecord(Sample(0x401000, 170));
        w.Complete();
        var seen = new Seen();
        var reader = new PerfRecordReader(new MemoryStream(ms.ToArray()), "damaged");
        reader.Run(seen);
        Assert.Equal(4, reader.Tally.CountOf("perf.record.damaged"));
        Assert.Single(seen.Samples);
        var examples = string.Join("\n", reader.Tally.ExamplesOf("perf.record.damaged"));
        Assert.Contains("damaged: byte offset 0x", examples);
        Assert.Contains("Comm record of 8 bytes is too short for its 32-byte sample_id", examples);
        Assert.Contains("LOST record of 48 bytes is too short", examples);
    }

    public static TheoryData<int, bool, int> CompressionCases() => new()
    {
        { 81, false, 1 }, { 81, true, 1 }, { 83, false, 1 }, { 83, true, 3 }, { 81, false, 4 },
    };

    /// <summary>
    /// The records of a real capture (perf 6.1, -g), compressed as one zstd stream (or several
    /// frames), cut into pieces of random size (so records straddle compressed records and a frame
    /// ends inside one), wrapped in COMPRESSED or COMPRESSED2, read back: the same samples.
    /// </summary>
    [Theory]
    [MemberData(nameof(CompressionCases))]
    public void CompressedStreamCutAnywhere(int type, bool tinyPieces, int frames)
    {
        string path = Fixtures.Path("perf", "python_script", "fp.data");
        var (expected, _, _) = Run.File(path);

        var records = new MemoryStream();
        PerfSession session;
        using (var fs = File.OpenRead(path))
        {
            var reader = new PerfRecordReader(fs, path, new PerfReadOptions { Order = PerfRecordOrder.File });
            var grab = new Grab(records);
            reader.Run(grab);
            session = reader.Session;
        }
        byte[] plain = records.ToArray();
        var compressed = new MemoryStream();
        int per = (plain.Length + frames - 1) / frames;
        for (int f = 0; f < frames; f++)
        {
            // Frame boundaries fall wherever per lands, usually inside a record.
            using var c = new Compressor(1);
            compressed.Write(c.Wrap(plain.AsSpan(f * per, Math.Min(per, plain.Length - f * per))));
        }
        byte[] z = compressed.ToArray();

        var ms = new MemoryStream();
        var w = new PerfDataWriter(ms);
        w.AddEvents(session);
        var rng = new Random(type * 7 + frames);
        for (int at = 0; at < z.Length;)
        {
            int n = Math.Min(z.Length - at, tinyPieces ? rng.Next(1, 40) : rng.Next(200, 3000));
            var piece = z.AsSpan(at, n);
            byte[] rec;
            if (type == 81)
            {
                // COMPRESSED: header + zstd bytes; size is not padded (perf's legacy unaligned record).
                rec = new byte[8 + n];
                piece.CopyTo(rec.AsSpan(8));
            }
            else
            {
                // COMPRESSED2: header + u64 data_size + data, padded to 8.
                rec = new byte[(16 + n + 7) & ~7];
                BinaryPrimitives.WriteUInt64LittleEndian(rec.AsSpan(8), (ulong)n);
                piece.CopyTo(rec.AsSpan(16));
            }
            BinaryPrimitives.WriteUInt32LittleEndian(rec, (uint)type);
            BinaryPrimitives.WriteUInt16LittleEndian(rec.AsSpan(6), (ushort)rec.Length);
            w.WriteRecord(rec);
            at += n;
        }
        w.CopyRawFeatures(session);
        w.Complete();

        var (got, tally, _) = Run.Samples(new MemoryStream(ms.ToArray()), "compressed");
        Assert.Equal(0, tally.ErrorCount);
        Assert.Equal(expected.Count, got.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal((expected[i].Time, expected[i].Tid, expected[i].Comm), (got[i].Time, got[i].Tid, got[i].Comm));
            Assert.Equal(expected[i].Frames.Select(f => (f.Address, f.Mapping?.Path)), got[i].Frames.Select(f => (f.Address, f.Mapping?.Path)));
        }
    }

    /// <summary>Collects the raw bytes of every record in file order.</summary>
    private sealed class Grab(Stream into) : PerfRecordHandler
    {
        public override void OnSample(in PerfSample s) => into.Write(s.Record.Bytes);
        public override void OnMmap(in PerfMmap m) => into.Write(m.Record.Bytes);
        public override void OnComm(in PerfComm c) => into.Write(c.Record.Bytes);
        public override void OnFork(in PerfTaskEvent t) => into.Write(t.Record.Bytes);
        public override void OnExit(in PerfTaskEvent t) => into.Write(t.Record.Bytes);
        public override void OnOtherRecord(in PerfRecord r) => into.Write(r.Bytes);
    }

    [Fact]
    public void DamagedZstdIsCountedAndTheStreamRestarts()
    {
        var b = File.ReadAllBytes(Fixtures.Path("perf-local", "zstd.data"));
        var recs = BadInputTests.Records(b).Where(r => r.Type == 81).ToList();
        Assert.True(recs.Count >= 3);
        // Overwrite the middle of one compressed record's payload.
        var victim = recs[recs.Count / 2];
        for (int i = 0; i < Math.Min(64, victim.Size - 24); i++) b[victim.Offset + 20 + i] ^= 0x5a;
        var (got, tally, _) = Run.Samples(new MemoryStream(b), "zstd-damaged");
        var (all, _, _) = Run.File(Fixtures.Path("perf-local", "zstd.data"));
        Assert.True(tally.CountOf("perf.zstd.damaged") + tally.CountOf("perf.sample.damaged") + tally.CountOf("perf.record.damaged") >= 1);
        Assert.True(got.Count < all.Count && got.Count > 0, $"{got.Count} of {all.Count} samples");
    }
}
