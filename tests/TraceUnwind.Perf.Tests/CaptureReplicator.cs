using System.Buffers.Binary;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// <b>Synthetic</b> large captures from a real one (bench/defer and <see cref="DeferredAllocationTests"/>): the
/// capture's records written <c>copies</c> times, one copy after the other. Copy k is a new process: every pid
/// and tid above 0 is shifted by k × <c>tidStride</c> and every non-zero time by k × (the capture's time span
/// + 1 ms). Records of the kernel (pid -1 or 0) are written once. Cookies stay as they are (the tid differs).
/// Only single-event little-endian captures (the perf-defer ones) are supported.
/// </summary>
public static class CaptureReplicator
{
    public static void Write(string inputPath, Stream output, int copies, int tidStride = 100_000)
    {
        using var fs = File.OpenRead(inputPath);
        var reader = new PerfRecordReader(fs, inputPath, new PerfReadOptions { Order = PerfRecordOrder.File });
        var collect = new Collector();
        reader.Run(collect);
        var session = reader.Session;
        if (session.IsBigEndian || session.Events.Count != 1) throw new NotSupportedException("single-event little-endian captures only");
        var attr = session.Events[0].Attr;
        var layout = new Layout(attr);
        ulong first = collect.Records.Where(r => r.Time != 0).Min(r => r.Time);
        ulong span = collect.Records.Max(r => r.Time) - first + 1_000_000;

        var writer = new PerfDataWriter(output);
        writer.AddEvents(session);
        for (int k = 0; k < copies; k++)
        {
            int dt = k * tidStride;
            ulong shift = (ulong)k * span;
            foreach (var (type, bytes, _) in collect.Records)
            {
                var r = (byte[])bytes.Clone();
                if (!Shift(type, r, layout, dt, shift, k)) continue;
                writer.WriteRecord(r);
            }
        }
        writer.CopyRawFeatures(session);
        writer.Complete();
    }

    /// <summary>Shifts pids, tids and times in place; false for a kernel record in a copy after the first.</summary>
    private static bool Shift(PerfRecordType type, byte[] r, Layout layout, int dt, ulong shift, int copy)
    {
        void Pid(int at)
        {
            int v = BinaryPrimitives.ReadInt32LittleEndian(r.AsSpan(at));
            if (v > 0) BinaryPrimitives.WriteInt32LittleEndian(r.AsSpan(at), v + dt);
        }
        void Time(int at)
        {
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(r.AsSpan(at));
            if (v != 0) BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(at), v + shift);
        }
        void Trailer()
        {
            if (layout.TrailerSize == 0) return;
            int t = r.Length - layout.TrailerSize;
            if (layout.Has(PerfSampleType.Tid)) { Pid(t); Pid(t + 4); t += 8; }
            if (layout.Has(PerfSampleType.Time)) Time(t);
        }
        switch (type)
        {
            case PerfRecordType.Sample:
            {
                int at = 8 + (layout.Has(PerfSampleType.Identifier) ? 8 : 0) + (layout.Has(PerfSampleType.Ip) ? 8 : 0);
                if (layout.Has(PerfSampleType.Tid))
                {
                    if (copy > 0 && BinaryPrimitives.ReadInt32LittleEndian(r.AsSpan(at)) <= 0) return false;
                    Pid(at); Pid(at + 4); at += 8;
                }
                if (layout.Has(PerfSampleType.Time)) Time(at);
                return true;
            }
            case PerfRecordType.Mmap or PerfRecordType.Mmap2 or PerfRecordType.Comm:
                if (copy > 0 && BinaryPrimitives.ReadInt32LittleEndian(r.AsSpan(8)) <= 0) return false;
                Pid(8); Pid(12);
                Trailer();
                return true;
            case PerfRecordType.Fork or PerfRecordType.Exit:
                if (copy > 0 && BinaryPrimitives.ReadInt32LittleEndian(r.AsSpan(8)) <= 0) return false;
                Pid(8); Pid(12); Pid(16); Pid(20); Time(24);
                Trailer();
                return true;
            case PerfRecordType.CallchainDeferred:
                Trailer();
                return true;
            default:
                // Kernel records of other types (LOST, KSYMBOL, ...) once; perf-synthesized ones (FINISHED_ROUND, ...) every copy.
                if (copy > 0 && type < PerfRecordType.HeaderAttr) return false;
                return true;
        }
    }

    /// <summary>Where TID and TIME sit (PERF_RECORD_SAMPLE body order; the sample_id trailer).</summary>
    private sealed class Layout(PerfEventAttr attr)
    {
        public bool Has(PerfSampleType bit) => (attr.SampleType & bit) != 0;
        public int TrailerSize { get; } = !attr.SampleIdAll ? 0 : 8 * new[]
        {
            PerfSampleType.Tid, PerfSampleType.Time, PerfSampleType.Id, PerfSampleType.StreamId, PerfSampleType.Cpu, PerfSampleType.Identifier,
        }.Count(b => (attr.SampleType & b) != 0);
    }

    private sealed class Collector : PerfRecordHandler
    {
        public readonly List<(PerfRecordType Type, byte[] Bytes, ulong Time)> Records = new();
        private void Add(in PerfRecord r, ulong time) => Records.Add((r.Type, r.Bytes.ToArray(), time));
        public override void OnSample(in PerfSample s) => Add(s.Record, s.Time);
        public override void OnMmap(in PerfMmap m) => Add(m.Record, m.Record.SampleId.Time);
        public override void OnComm(in PerfComm c) => Add(c.Record, c.Record.SampleId.Time);
        public override void OnFork(in PerfTaskEvent f) => Add(f.Record, f.Time);
        public override void OnExit(in PerfTaskEvent e) => Add(e.Record, e.Time);
        public override void OnDeferredCallchain(in PerfDeferredCallchain d) => Add(d.Record, d.Record.SampleId.Time);
        public override void OnOtherRecord(in PerfRecord r) => Add(r, r.SampleId.HasTime ? r.SampleId.Time : 0);
    }
}
