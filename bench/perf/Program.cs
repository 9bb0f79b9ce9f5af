using System.Diagnostics;
using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Perf;

// Throughput of the perf.data front end on one input: records/s through the reader alone
// (framing, ordering, decoding) and samples/s through the whole sample pipeline (process model,
// frames) into a sink that only counts. Without a file argument it builds a larger input from a
// fixture by repeating its samples (--repeat N, default 200), in memory.
//
// --writer script|fold|csv FILE: instead, runs the whole pipeline from FILE into that writer (output
// discarded) a few times and prints time, GC counts and bytes allocated per run: where memory churns.
//
// --repeat-samples N IN OUT: writes OUT with every SAMPLE of IN written N times in a row: N times the
// samples with the same processes and distinct stacks, for the memory check of bench/perf-script.sh
// (fold's memory must not grow with it). Only traceunwind reads OUT: perf 6.1 rejects PerfDataWriter's
// attr section ("non matching sample_type": it writes attr_size = 152 with attr.size = 128, and perf
// expects each attr's ids section right after attr.size bytes).
if (args.Length == 4 && args[0] == "--repeat-samples")
{
    using var input = File.OpenRead(args[2]);
    using var outFile = File.Create(args[3]);
    var reader = new PerfRecordReader(input, args[2], new PerfReadOptions { Order = PerfRecordOrder.File });
    var w = new PerfDataWriter(outFile);
    reader.Run(new Repeater(reader.Session, w, int.Parse(args[1]), roundsEvery: 0));
    Console.WriteLine($"{args[3]}: {new FileInfo(args[3]).Length / 1048576.0:F1} MiB");
    return;
}
string? writer = args.SkipWhile(a => a != "--writer").Skip(1).FirstOrDefault();
if (writer is not null)
{
    string file = args.Last();
    for (int round = 0; round < 4; round++)
    {
        int g0 = GC.CollectionCount(0), g1 = GC.CollectionCount(1), g2 = GC.CollectionCount(2);
        long alloc = GC.GetTotalAllocatedBytes(precise: true);
        var sw = Stopwatch.StartNew();
        using var fs = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        ISampleSink sink = writer switch
        {
            "script" => new TraceUnwind.Output.PerfScriptWriter(Stream.Null),
            "fold" => new TraceUnwind.Output.FoldedWriter(Stream.Null),
            "csv" => new TraceUnwind.Output.CsvSampleWriter(Stream.Null),
            _ => throw new ArgumentException($"unknown writer {writer}"),
        };
        new PerfSampleSource(fs, file, new PerfReadOptions(), new ErrorTally()).RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult();
        var gc = GC.GetGCMemoryInfo();
        Console.WriteLine($"{writer} round {round}: {sw.Elapsed.TotalMilliseconds:F0} ms, GCs {GC.CollectionCount(0) - g0}/{GC.CollectionCount(1) - g1}/{GC.CollectionCount(2) - g2}, " +
                          $"allocated {(GC.GetTotalAllocatedBytes(precise: true) - alloc) / 1e6:F2} MB, heap after last GC {gc.HeapSizeBytes / 1e6:F1} MB, " +
                          $"committed {gc.TotalCommittedBytes / 1e6:F1} MB, peak working set {Environment.WorkingSet / 1e6:F0} MB");
    }
    return;
}
string? path = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal));
int repeat = args.SkipWhile(a => a != "--repeat").Skip(1).Select(int.Parse).FirstOrDefault(200);
byte[] data;
string name;
if (path is not null)
{
    data = File.ReadAllBytes(path);
    name = path;
}
else
{
    string root = AppContext.BaseDirectory;
    while (!File.Exists(Path.Combine(root, "TraceUnwind.sln"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("repository root not found");
    string fixture = Path.Combine(root, "fixtures", "perf-defer", "bash-fp", "perf.data");
    data = Repeat(fixture, repeat);
    name = $"{fixture} with every sample x{repeat}";
}
Console.WriteLine($"input: {name}, {data.Length / 1e6:F1} MB");

for (int round = 0; round < 6; round++)
{
    var records = new RecordCounter();
    var sw = Stopwatch.StartNew();
    using (var reader = new PerfRecordReader(new MemoryStream(data, writable: false), name))
        reader.Run(records);
    double t1 = sw.Elapsed.TotalSeconds;

    var sink = new Sink();
    sw.Restart();
    var source = new PerfSampleSource(new MemoryStream(data, writable: false), name, new PerfReadOptions(), new ErrorTally());
    source.RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult();
    double t2 = sw.Elapsed.TotalSeconds;
    Console.WriteLine($"round {round}: reader {records.Count / t1 / 1e6:F2} M records/s ({data.Length / t1 / 1e6:F0} MB/s); " +
                      $"samples {sink.Samples / t2 / 1e6:F2} M samples/s, {sink.Frames / t2 / 1e6:F1} M frames/s ({t2 * 1000:F0} ms)");
}

static byte[] Repeat(string fixture, int copies)
{
    var ms = new MemoryStream();
    using var fs = File.OpenRead(fixture);
    var reader = new PerfRecordReader(fs, fixture, new PerfReadOptions { Order = PerfRecordOrder.File });
    reader.Run(new Repeater(reader.Session, new PerfDataWriter(ms), copies));
    return ms.ToArray();
}

sealed class RecordCounter : PerfRecordHandler
{
    public long Count;
    public override void OnSample(in PerfSample s) => Count++;
    public override void OnMmap(in PerfMmap m) => Count++;
    public override void OnComm(in PerfComm c) => Count++;
    public override void OnFork(in PerfTaskEvent t) => Count++;
    public override void OnExit(in PerfTaskEvent t) => Count++;
    public override void OnOtherRecord(in PerfRecord r) => Count++;
}

sealed class Sink : ISampleSink
{
    public long Samples, Frames;
    public void OnSample(in Sample s) { Samples++; Frames += s.Frames.Length; }
    public void Flush() { }
    public void Complete() { }
}

/// <summary>
/// Copies an input record by record, writing each sample <c>copies</c> times; with <c>roundsEvery</c> &gt; 0 a
/// FINISHED_ROUND after every that many samples keeps rounds small (the input's own rounds are copied too).
/// </summary>
sealed class Repeater(PerfSession session, PerfDataWriter writer, int copies, int roundsEvery = 16) : PerfRecordHandler
{
    private bool _started;
    private int _since;
    private void Start() { if (!_started) { _started = true; writer.AddEvents(session); } }
    public override void OnSample(in PerfSample s)
    {
        Start();
        for (int i = 0; i < copies; i++) writer.WriteRecord(s.Record.Bytes);
        if (roundsEvery > 0 && ++_since % roundsEvery == 0) writer.WriteHeaderOnly(PerfRecordType.FinishedRound);
    }
    public override void OnMmap(in PerfMmap m) { Start(); writer.WriteRecord(m.Record.Bytes); }
    public override void OnComm(in PerfComm c) { Start(); writer.WriteRecord(c.Record.Bytes); }
    public override void OnFork(in PerfTaskEvent t) { Start(); writer.WriteRecord(t.Record.Bytes); }
    public override void OnExit(in PerfTaskEvent t) { Start(); writer.WriteRecord(t.Record.Bytes); }
    public override void OnOtherRecord(in PerfRecord r) { Start(); writer.WriteRecord(r.Bytes); }
    public override void OnEnd() { writer.CopyRawFeatures(session); writer.Complete(); }
}

