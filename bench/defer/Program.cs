using System.Diagnostics;
using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Perf;
using TraceUnwind.Perf.Deferred;
using TraceUnwind.Perf.Inject;
using TraceUnwind.Output;
using TraceUnwind.Perf.Tests;
using TraceUnwind.Testing;

// bench/defer (README.md):
//   make OUT COPIES   synthetic deferred capture: recur-defer replicated COPIES times (new tids, shifted times),
//                     OUT.injected.data, the same samples with ordinary callchains (PerfInjector), and
//                     OUT.injected+records.data, that plus the deferred records again (nothing to join, same input records)
//   probe FILE [ROUNDS]  the perf front end into a counting sink, with the joiner stage and without
//                     (--no-merge: cookies stay), alternating, ROUNDS each; prints min and median
switch (args.FirstOrDefault())
{
    case "make" when args.Length == 3:
        Make(args[1], int.Parse(args[2]));
        break;
    case "micro" when args.Length == 2:
        Micro(args[1]);
        break;
    case "probe" when args.Length >= 2:
        Probe(args[1], args.Length > 2 ? int.Parse(args[2]) : 7);
        break;
    default:
        Console.Error.WriteLine("usage: make OUT COPIES | probe FILE [ROUNDS]");
        return 2;
}
return 0;

static void Make(string output, int copies)
{
    string fixture = Fixtures.Path("perf-defer", "recur-defer", "perf.data");
    using (var fs = File.Create(output)) CaptureReplicator.Write(fixture, fs, copies);
    var tally = new ErrorTally();
    PerfInjectResult r;
    using (var input = File.OpenRead(output))
    using (var injected = File.Create(output + ".injected.data"))
        r = new PerfInjector(null, tally).Run(input, output, injected);
    Console.WriteLine($"{output}: {new FileInfo(output).Length / 1e6:F1} MB, recur-defer x{copies}; injected: {r.Join}");
    tally.WriteSummary(Console.Out);
    WithRecords(output, output + ".injected.data", output + ".injected+records.data");
}

// The injected samples (ordinary callchains) with the deferred records put back at their times: the same
// input records as the deferred capture and the same stacks as the joined ones, with nothing left to join.
// fold on it vs fold on the deferred capture is the joiner's own cost.
static void WithRecords(string deferredPath, string injectedPath, string output)
{
    var records = new List<(ulong Time, byte[] Bytes)>();
    using (var fs = File.OpenRead(deferredPath))
        new PerfRecordReader(fs, deferredPath).Run(new DeferredRecords(records));
    using var inj = File.OpenRead(injectedPath);
    var reader = new PerfRecordReader(inj, injectedPath, new PerfReadOptions { Order = PerfRecordOrder.File });
    using var outFs = File.Create(output);
    var writer = new PerfDataWriter(outFs);
    reader.Run(new Merger(reader.Session, writer, records));
    writer.CopyRawFeatures(reader.Session);
    writer.Complete();
}

static void Micro(string path)
{
    // Cost of the joiner's pieces per sample: re-decoding a held copy, copying it.
    var h = new FirstDeferred();
    using (var fs = File.OpenRead(path)) { var r = new PerfRecordReader(fs, path); r.Run(h); h.Session = r.Session; }
    var parser = new PerfSampleParser(h.Session!);
    byte[] rec = h.Bytes!;
    var buf = new byte[rec.Length];
    for (int round = 0; round < 5; round++)
    {
        const int N = 5_000_000;
        var sw = Stopwatch.StartNew();
        ulong sum = 0;
        for (int i = 0; i < N; i++) { parser.TryParseSample(rec, 0, out var s, out _); sum += s.Time; }
        double parse = sw.Elapsed.TotalNanoseconds / N;
        sw.Restart();
        for (int i = 0; i < N; i++) { rec.AsSpan().CopyTo(buf); sum += buf[i & 63]; }
        double copy = sw.Elapsed.TotalNanoseconds / N;
        Console.WriteLine($"re-decode {parse:F1} ns, copy {copy:F1} ns ({rec.Length} bytes) [{sum & 1}]");
    }
}

static void Probe(string path, int rounds)
{
    // A: the deferred capture, joiner on (the default); B: the same, no joiner (--no-merge: stacks end at the
    // cookie); C: the injected capture (the joined stacks as ordinary callchains, nothing to join).
    // Each into a counting sink (front end) and into FoldedWriter (fold, to a null stream), in process,
    // after a warm-up: steady state, no JIT or start-up in the figures.
    byte[] deferred = File.ReadAllBytes(path);
    byte[] injected = File.ReadAllBytes(path + ".injected.data");
    byte[] withRecords = File.ReadAllBytes(path + ".injected+records.data");
    Console.WriteLine($"{path}: {deferred.Length / 1e6:F1} MB; injected {injected.Length / 1e6:F1} MB; in memory");
    var cases = new (string Name, byte[] Data, bool Join, bool Fold, bool NoMerge)[]
    {
        ("front end, deferred + joiner", deferred, true, false, false),
        ("front end, deferred, --no-merge", deferred, false, false, true),
        ("front end, injected", injected, false, false, false),
        ("front end, injected + records", withRecords, false, false, false),
        ("fold, deferred + joiner", deferred, true, true, false),
        ("fold, deferred, --no-merge", deferred, false, true, true),
        ("fold, injected", injected, false, true, false),
        ("fold, injected + records", withRecords, false, true, false),
    };
    // BENCH_CASES=0,2 runs only those (for profiling one case).
    var only = Environment.GetEnvironmentVariable("BENCH_CASES")?.Split(',').Select(int.Parse).ToHashSet();
    var times = cases.Select(_ => new List<double>()).ToArray();
    var frames = new long[cases.Length];
    for (int r = -1; r < rounds; r++) // round -1 warms up every case
        for (int c = 0; c < cases.Length; c++)
        {
            if (only is not null && !only.Contains(c)) { times[c].Add(0); continue; }
            var (t, f, j) = Run(cases[c].Data, cases[c].Join, cases[c].Fold, cases[c].NoMerge);
            if (r < 0) { if (j is not null && c == 0) Console.WriteLine($"joiner: {j}"); continue; }
            times[c].Add(t);
            frames[c] = f;
        }
    for (int c = 0; c < cases.Length; c++)
    {
        times[c].Sort();
        Console.WriteLine($"{cases[c].Name,-32} min {times[c][0] * 1000,6:F0} ms, median {times[c][times[c].Count / 2] * 1000,6:F0} ms, {frames[c],9} frames");
    }
    double Min(int c) => times[c][0];
    double Median(int c) => times[c][times[c].Count / 2];
    string Pct(int a, int b) => $"{(Min(a) / Min(b) - 1) * 100:+0.0;-0.0} % (median {(Median(a) / Median(b) - 1) * 100:+0.0;-0.0} %)";
    Console.WriteLine($"front end: joiner adds {Pct(0, 3)} vs injected + records (its own cost), {Pct(0, 2)} vs injected, {Pct(0, 1)} vs --no-merge");
    Console.WriteLine($"fold:      joiner adds {Pct(4, 7)} vs injected + records (its own cost), {Pct(4, 6)} vs injected, {Pct(4, 5)} vs --no-merge");
}

static (double Seconds, long Frames, DeferredJoinStats? Stats) Run(byte[] data, bool join, bool fold, bool noMerge)
{
    var tally = new ErrorTally();
    DeferredCallchainJoiner? joiner = null;
    // Without the joiner: the CLI's --no-merge (cookies stay, each deferred record is a sample of its own, which fold skips).
    var options = new PerfReadOptions { RecordStage = join ? DeferredCallchainJoiner.Stage(tally, null, j => joiner = j) : null, EmitDeferredCallchains = noMerge };
    var counter = new Sink();
    ISampleSink sink = fold ? new Tee(counter, new FoldedWriter(Stream.Null)) : counter;
    var sw = Stopwatch.StartNew();
    new PerfSampleSource(new MemoryStream(data, writable: false), "bench", options, tally).RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult();
    return (sw.Elapsed.TotalSeconds, counter.Frames, joiner?.Stats);
}

sealed class Tee(Sink counter, ISampleSink next) : ISampleSink
{
    public void OnSample(in Sample s) { counter.Frames += s.Frames.Length; next.OnSample(s); }
    public void Flush() => next.Flush();
    public void Complete() => next.Complete();
}

sealed class Sink : ISampleSink
{
    public long Samples, Frames;
    public ulong Sum;
    public void OnSample(in Sample s)
    {
        Samples++;
        Frames += s.Frames.Length;
        foreach (var f in s.Frames) Sum += f.Address;
    }
    public void Flush() { }
    public void Complete() { }
}

sealed class FirstDeferred : PerfRecordHandler
{
    public byte[]? Bytes;
    public PerfSession? Session;
    public override void OnSample(in PerfSample s) { if (Bytes is null && s.HasDeferredUserCallchain && s.Callchain.Length > 10) Bytes = s.Record.Bytes.ToArray(); }
}


sealed class DeferredRecords(List<(ulong, byte[])> records) : PerfRecordHandler
{
    public override void OnDeferredCallchain(in PerfDeferredCallchain d) => records.Add((d.Record.SampleId.Time, d.Record.Bytes.ToArray()));
}

/// <summary>Copies a time-ordered file, putting each deferred record before the first record that is later.</summary>
sealed class Merger(PerfSession session, PerfDataWriter writer, List<(ulong Time, byte[] Bytes)> records) : PerfRecordHandler
{
    private int _next;
    private bool _started;

    private void Put(ReadOnlySpan<byte> bytes, ulong time)
    {
        if (!_started) { _started = true; writer.AddEvents(session); }
        while (time != 0 && _next < records.Count && records[_next].Time <= time) writer.WriteRecord(records[_next++].Bytes);
        writer.WriteRecord(bytes);
    }

    public override void OnSample(in PerfSample s) => Put(s.Record.Bytes, s.Time);
    public override void OnMmap(in PerfMmap m) => Put(m.Record.Bytes, m.Record.SampleId.Time);
    public override void OnComm(in PerfComm c) => Put(c.Record.Bytes, c.Record.SampleId.Time);
    public override void OnFork(in PerfTaskEvent f) => Put(f.Record.Bytes, f.Time);
    public override void OnExit(in PerfTaskEvent e) => Put(e.Record.Bytes, e.Time);
    public override void OnOtherRecord(in PerfRecord r) => Put(r.Bytes, r.SampleId.HasTime ? r.SampleId.Time : 0);
    public override void OnEnd() { while (_next < records.Count) writer.WriteRecord(records[_next++].Bytes); }
}
