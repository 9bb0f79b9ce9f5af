using System.Buffers.Binary;
using TraceUnwind.Testing;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// perf cannot record a big-endian (<c>2ELIFREP</c>) file on this machine, so real captures are
/// transcoded into synthetic big-endian copies (every field swapped by its type: u32 pid/tid pairs,
/// u64 words, the attr bitfield by perf's bit-reversal rule, strings and raw bytes kept), and the
/// copy must read back to the same samples, frames, side-band records and header information.
/// The same transcoder writing little-endian must reproduce each record byte for byte, which checks
/// the writer's encoders against perf's own bytes.
/// </summary>
public sealed class ByteOrderTests
{
    /// <summary>Re-encodes every record of an input with a <see cref="PerfDataWriter"/>.</summary>
    private sealed class Transcoder(PerfSession session, PerfDataWriter writer) : PerfRecordHandler
    {
        public int Records, Dropped;
        private bool _started;

        private void Start()
        {
            if (_started) return;
            _started = true;
            writer.AddEvents(session);
        }

        private void Check(ReadOnlySpan<byte> original, long before)
        {
            Records++;
            if (writer.IsBigEndian || session.IsBigEndian) return;
            // Compare the bytes just written with the original record.
            _written ??= new List<(long, byte[])>();
            _written.Add((before, original.ToArray()));
        }

        private List<(long At, byte[] Bytes)>? _written;
        public IReadOnlyList<(long At, byte[] Bytes)> Written => _written ?? [];

        public override void OnSample(in PerfSample s) { Start(); long at = writer.DataSize; writer.WriteSample(s); Check(s.Record.Bytes, at); }
        public override void OnMmap(in PerfMmap m) { Start(); long at = writer.DataSize; writer.WriteMmap(m); Check(m.Record.Bytes, at); }
        public override void OnComm(in PerfComm c) { Start(); long at = writer.DataSize; writer.WriteComm(c); Check(c.Record.Bytes, at); }
        public override void OnFork(in PerfTaskEvent t) { Start(); long at = writer.DataSize; writer.WriteTask(t); Check(t.Record.Bytes, at); }
        public override void OnExit(in PerfTaskEvent t) { Start(); long at = writer.DataSize; writer.WriteTask(t); Check(t.Record.Bytes, at); }
        public override void OnDeferredCallchain(in PerfDeferredCallchain d) { Start(); long at = writer.DataSize; writer.WriteDeferredCallchain(d); Check(d.Record.Bytes, at); }

        public override void OnOtherRecord(in PerfRecord r)
        {
            Start();
            var src = r.Bytes;
            var dst = new byte[src.Length];
            src.CopyTo(dst);
            bool be = writer.IsBigEndian;
            bool srcBe = r.IsBigEndian;
            void U64(int at) => Put64(dst, at, srcBe ? BinaryPrimitives.ReadUInt64BigEndian(dst.AsSpan(at)) : BinaryPrimitives.ReadUInt64LittleEndian(dst.AsSpan(at)), be);
            switch (r.Type)
            {
                case PerfRecordType.FinishedRound or PerfRecordType.FinishedInit:
                    break;
                case PerfRecordType.IdIndex:
                    // u64 nr; { u64 id, idx, cpu, tid }[nr]: all u64 words.
                    for (int at = 8; at + 8 <= src.Length; at += 8) U64(at);
                    break;
                case PerfRecordType.TimeConv:
                    // u64 time_shift, time_mult, time_zero, time_cycles, time_mask; then u8 flags.
                    for (int at = 8; at + 8 <= Math.Min(src.Length, 48); at += 8) U64(at);
                    break;
                case PerfRecordType.ThreadMap:
                    // u64 nr; { u64 pid; char comm[16]; }[nr]
                    U64(8);
                    for (int at = 16; at + 24 <= src.Length; at += 24) U64(at);
                    break;
                default:
                    // CPU_MAP and EVENT_UPDATE (unit, scale, cpus) do not affect samples; not transcoded.
                    Dropped++;
                    return;
            }
            Put32(dst, 0, (uint)r.Type, be);
            Put16(dst, 4, r.Misc, be);
            Put16(dst, 6, (ushort)dst.Length, be);
            long before = writer.DataSize;
            writer.WriteRecord(dst);
            Check(src, before);
        }

        public override void OnEnd()
        {
            Start();
            if (session.Hostname is { } h) writer.SetStringFeature(PerfFeature.Hostname, h);
            if (session.OsRelease is { } o) writer.SetStringFeature(PerfFeature.OsRelease, o);
            if (session.PerfVersion is { } v) writer.SetStringFeature(PerfFeature.Version, v);
            if (session.Arch is { } a) writer.SetStringFeature(PerfFeature.Arch, a);
            if (session.CpuDesc is { } d) writer.SetStringFeature(PerfFeature.CpuDesc, d);
            if (session.CpuId is { } c) writer.SetStringFeature(PerfFeature.CpuId, c);
            if (session.NrCpusAvailable >= 0) writer.SetNrCpus(session.NrCpusAvailable, session.NrCpusOnline);
            if (session.Cmdline.Count > 0) writer.SetCmdline(session.Cmdline);
            if (session.LastSampleTime != 0) writer.SetSampleTime(session.FirstSampleTime, session.LastSampleTime);
            if (session.BuildIds.Count > 0) writer.SetBuildIds(session.BuildIds);
            writer.Complete();
        }

        private static void Put16(byte[] b, int at, ushort v, bool be) { if (be) BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(at), v); else BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(at), v); }
        private static void Put32(byte[] b, int at, uint v, bool be) { if (be) BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(at), v); else BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), v); }
        private static void Put64(byte[] b, int at, ulong v, bool be) { if (be) BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(at), v); else BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), v); }
    }

    private sealed class IgnoreAll : PerfRecordHandler { }

    internal static byte[] Transcode(string path, bool bigEndian, out int records, out int dropped, out IReadOnlyList<(long At, byte[] Bytes)> written)
    {
        var ms = new MemoryStream();
        using var fs = File.OpenRead(path);
        var reader = new PerfRecordReader(fs, path, new PerfReadOptions { Order = PerfRecordOrder.File });
        var writer = new PerfDataWriter(ms, bigEndian);
        var t = new Transcoder(reader.Session, writer);
        reader.Run(t);
        Assert.Equal(0, reader.Tally.ErrorCount);
        records = t.Records;
        dropped = t.Dropped;
        written = t.Written;
        return ms.ToArray();
    }

    public static TheoryData<string> Captures() => new()
    {
        "perf/bash_loop/fp.data", "perf/bash_loop/tp.data", "perf/python_script/dwarf.data",
        "perf-defer/recur-defer/perf.data", "perf-local/zstd.data",
    };

    [Theory]
    [MemberData(nameof(Captures))]
    public void BigEndianCopyReadsTheSame(string capture)
    {
        string path = Fixtures.Path(capture.Split('/'));
        byte[] be = Transcode(path, bigEndian: true, out int records, out int dropped, out _);
        Assert.Equal("2ELIFREP"u8.ToArray(), be[..8]);
        Assert.True(records > 100 && dropped <= 6, $"{records} records transcoded, {dropped} dropped");

        var options = new PerfReadOptions { EmitDeferredCallchains = true };
        var (expected, t0, s0) = Run.File(path, options);
        var (got, tally, session) = Run.Samples(new MemoryStream(be), capture + " (big-endian copy)", options);
        Assert.Equal(0, tally.ErrorCount);
        Assert.True(session.IsBigEndian);
        Assert.Equal(expected.Count, got.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var e = expected[i];
            var g = got[i];
            Assert.Equal((e.Time, e.Pid, e.Tid, e.Cpu, e.Period, e.Ip, e.Comm, e.Event, e.Kind, e.Cookie),
                         (g.Time, g.Pid, g.Tid, g.Cpu, g.Period, g.Ip, g.Comm, g.Event, g.Kind, g.Cookie));
            Assert.Equal(e.Frames.Select(f => (f.Address, f.Kind, f.Flags, f.Mapping?.ToString())),
                         g.Frames.Select(f => (f.Address, f.Kind, f.Flags, f.Mapping?.ToString())));
        }
        Assert.Equal((s0.Arch, s0.Hostname, s0.OsRelease, s0.PerfVersion, s0.NrCpusAvailable, s0.NrCpusOnline, s0.FirstSampleTime, s0.LastSampleTime),
                     (session.Arch, session.Hostname, session.OsRelease, session.PerfVersion, session.NrCpusAvailable, session.NrCpusOnline, session.FirstSampleTime, session.LastSampleTime));
        Assert.Equal(s0.Cmdline, session.Cmdline);
        Assert.Equal(s0.BuildIds, session.BuildIds, (a, b) => a.BuildIdHex == b.BuildIdHex && a.FileName == b.FileName && a.Pid == b.Pid);
        Assert.Equal(s0.Events.Select(e => (e.Name, e.Attr.SampleType, e.Attr.Flags, e.Attr.Config, string.Join(",", e.Ids))),
                     session.Events.Select(e => (e.Name, e.Attr.SampleType, e.Attr.Flags, e.Attr.Config, string.Join(",", e.Ids))));

        // Side-band records as perf prints them.
        var p0 = new SidebandTests.SidebandPrinter();
        using (var fs = File.OpenRead(path)) new PerfRecordReader(fs, path).Run(p0);
        var p1 = new SidebandTests.SidebandPrinter();
        new PerfRecordReader(new MemoryStream(be), "be").Run(p1);
        Assert.Equal(p0.Lines, p1.Lines);
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void LittleEndianReencodingReproducesPerfsBytes(string capture)
    {
        string path = Fixtures.Path(capture.Split('/'));
        byte[] le = Transcode(path, bigEndian: false, out int records, out _, out var written);
        var reader = new PerfRecordReader(new MemoryStream(le), "le");
        reader.Run(new IgnoreAll());
        long dataOffset = reader.Session.DataOffset;
        Assert.Equal(records, written.Count);
        foreach (var (at, original) in written)
        {
            var copy = le.AsSpan((int)(dataOffset + at), original.Length);
            Assert.True(copy.SequenceEqual(original), $"record of type {BinaryPrimitives.ReadUInt32LittleEndian(original)} re-encoded differently");
        }
    }
}
