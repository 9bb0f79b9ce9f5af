namespace TraceUnwind.Perf.Tests;

/// <summary>
/// A real capture with every SAMPLE record repeated (the other records once), for tests that check
/// that more samples cost no more allocation (AllocationTests, PipelinedSinkTests).
/// </summary>
internal static class SampleRepeat
{
    private sealed class Repeater(PerfSession session, PerfDataWriter writer, int copies) : PerfRecordHandler
    {
        public int Samples;
        private bool _started;
        private void Start() { if (!_started) { _started = true; writer.AddEvents(session); } }
        public override void OnSample(in PerfSample s) { Start(); for (int i = 0; i < copies; i++) { writer.WriteRecord(s.Record.Bytes); Samples++; } }
        public override void OnMmap(in PerfMmap m) { Start(); writer.WriteRecord(m.Record.Bytes); }
        public override void OnComm(in PerfComm c) { Start(); writer.WriteRecord(c.Record.Bytes); }
        public override void OnFork(in PerfTaskEvent t) { Start(); writer.WriteRecord(t.Record.Bytes); }
        public override void OnExit(in PerfTaskEvent t) { Start(); writer.WriteRecord(t.Record.Bytes); }
        public override void OnOtherRecord(in PerfRecord r) { Start(); writer.WriteRecord(r.Bytes); }
        public override void OnEnd() { writer.CopyRawFeatures(session); writer.Complete(); }
    }

    /// <summary>The capture rewritten with every SAMPLE record <paramref name="copies"/> times, the other records once.</summary>
    public static byte[] WithSamplesRepeated(string path, int copies, out int samples)
    {
        var ms = new MemoryStream();
        using var fs = File.OpenRead(path);
        var reader = new PerfRecordReader(fs, path, new PerfReadOptions { Order = PerfRecordOrder.File });
        var rep = new Repeater(reader.Session, new PerfDataWriter(ms), copies);
        reader.Run(rep);
        samples = rep.Samples;
        return ms.ToArray();
    }
}
