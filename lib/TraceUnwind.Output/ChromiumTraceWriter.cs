using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using TraceUnwind.Model;
using TraceUnwind.Output.Internal;
using TraceUnwind.Symbols;

namespace TraceUnwind.Output;

/// <summary>Options of <see cref="ChromiumTraceWriter"/>.</summary>
public sealed record ChromiumTraceOptions
{
    /// <summary>
    /// A sample stands for the time until the thread's next sample, but at most this long (default 10 ms):
    /// past it the thread is shown idle until its next sample, so a sleeping thread does not appear busy.
    /// </summary>
    public ulong MaxSampleDurationNs { get; init; } = 10_000_000;
}

/// <summary>
/// The Chrome Trace Event Format (JSON object form) that the Perfetto UI (ui.perfetto.dev) and
/// chrome://tracing open: each thread's sampled stacks become nested slices, a flame chart over
/// time. Perfetto's JSON importer supports <c>B</c>/<c>E</c> slices that nest properly per thread and
/// <c>M</c> metadata, which is all this writes (Perfetto ignores the legacy top-level
/// <c>samples</c>/<c>stackFrames</c>, so they are not used).
/// <code>
/// {"traceEvents":[
///  {"ph":"M","pid":P,"tid":T,"name":"thread_name","args":{"name":"comm"}},   first sample of a thread, and on a comm change
///  {"ph":"M","pid":P,"tid":P,"name":"process_name","args":{"name":"comm"}},  first sample of a process
///  {"ph":"B","pid":P,"tid":T,"ts":US,"name":"frame name","cat":"user"},     a frame appears (outermost first)
///  {"ph":"E","pid":P,"tid":T,"ts":US},                                      a frame disappears (innermost first)
///  ...],
/// "displayTimeUnit":"ns","otherData":{"exporter":"traceunwind","samples":N}}
/// </code>
/// At each sample the thread's open slices are compared with the new stack (outermost first): frames
/// beyond the common prefix are closed (<c>E</c>) and the new ones opened (<c>B</c>) at the sample's time,
/// so consecutive samples with the same stack make one slice. <c>ts</c> is in microseconds with 3
/// decimals (the nanosecond clock exactly). A gap longer than <see cref="ChromiumTraceOptions.MaxSampleDurationNs"/>
/// closes everything at last time + that maximum; at the end each thread's slices close after its last
/// sample by its last sample gap (capped the same way). Frame names are <see cref="FrameNamer.WriteName"/>'s;
/// <c>cat</c> is the CSV kind (<c>kernel</c>, <c>user</c>, ...). Cookie frames and deferred-callchain records
/// (<c>--no-merge</c>) are skipped. Timestamps going back on a thread are clamped to its last time.
/// <para>
/// Streaming: events are written as samples arrive (memory: the open stack of each thread and the
/// frame-name table); <see cref="Flush"/> pushes them to the stream (a valid JSON prefix),
/// <see cref="Complete"/> closes the slices and the document. No allocation per sample once frames are known.
/// </para>
/// </summary>
public sealed class ChromiumTraceWriter : ISampleSink
{
    private readonly Utf8Output _out;
    private readonly Utf8JsonWriter _json;
    private readonly ChromiumTraceOptions _options;
    private readonly FrameNamer _namer;
    private readonly FrameNameCache _frames;
    private readonly Dictionary<int, ThreadState> _threads = new();
    private readonly HashSet<int> _processes = new();
    private int[] _stack = new int[256];
    private bool _completed;

    private sealed class ThreadState(int pid, int tid)
    {
        public readonly int Pid = pid, Tid = tid;
        public int[] Open = new int[64];
        public int Depth;
        public ulong LastTime, LastGap;
        public string? Comm;
    }

    /// <param name="output">Receives UTF-8 JSON; not closed by the writer.</param>
    /// <param name="symbolizer">Names frames; null = <c>path[+0xOFF]</c> and addresses.</param>
    /// <param name="options">null = defaults.</param>
    public ChromiumTraceWriter(Stream output, ISymbolizer? symbolizer = null, ChromiumTraceOptions? options = null)
    {
        _out = new Utf8Output(output);
        _json = new Utf8JsonWriter(_out, JsonText.Options);
        _options = options ?? new ChromiumTraceOptions();
        _namer = new FrameNamer(symbolizer);
        _frames = new FrameNameCache(Render);
        _json.WriteStartObject();
        _json.WriteStartArray("traceEvents"u8);
    }

    /// <summary>Samples turned into slices so far.</summary>
    public long Samples { get; private set; }

    // Key text: kind name, NUL, frame name (split again when written).
    private void Render(in Frame frame, System.Buffers.ArrayBufferWriter<byte> destination)
    {
        FrameNamer.WriteUtf8(destination, FrameNamer.KindName(frame.Kind));
        destination.Write("\0"u8);
        _namer.WriteName(destination, frame);
    }

    public void OnSample(in Sample sample)
    {
        if (_completed) throw new InvalidOperationException("the writer is complete");
        if (sample.Kind != SampleKind.Event) return;
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_threads, sample.Tid, out bool exists);
        var t = slot ??= new ThreadState(sample.Pid, sample.Tid);
        if (!exists) t.LastTime = sample.Time;
        if (!ReferenceEquals(t.Comm, sample.Comm) && t.Comm != sample.Comm)
        {
            t.Comm = sample.Comm;
            Metadata(t.Pid, t.Tid, "thread_name"u8, sample.Comm);
            if (t.Pid >= 0 && _processes.Add(t.Pid)) Metadata(t.Pid, t.Pid, "process_name"u8, sample.Comm);
        }
        ulong ts = Math.Max(sample.Time, t.LastTime);
        ulong max = _options.MaxSampleDurationNs;
        if (t.Depth > 0 && ts - t.LastTime > max) CloseTo(t, 0, t.LastTime + max);

        var frames = sample.Frames;
        if (_stack.Length < frames.Length) _stack = new int[Math.Max(frames.Length, _stack.Length * 2)];
        int n = 0;
        for (int i = frames.Length - 1; i >= 0; i--)
            if (frames[i].Kind != FrameKind.DeferredCookie) _stack[n++] = _frames.GetId(frames[i]);
        int common = 0;
        while (common < n && common < t.Depth && t.Open[common] == _stack[common]) common++;
        CloseTo(t, common, ts);
        if (t.Open.Length < n) Array.Resize(ref t.Open, Math.Max(n, t.Open.Length * 2));
        for (int i = common; i < n; i++)
        {
            int id = _stack[i];
            t.Open[i] = id;
            var key = _frames.Names[id];
            int nul = key.IndexOf((byte)0);
            _json.WriteStartObject();
            _json.WriteString("ph"u8, "B"u8);
            _json.WriteNumber("pid"u8, t.Pid);
            _json.WriteNumber("tid"u8, t.Tid);
            _json.WritePropertyName("ts"u8);
            JsonText.WriteMicroseconds(_json, ts);
            _json.WriteString("name"u8, key[(nul + 1)..]);
            _json.WriteString("cat"u8, key[..nul]);
            _json.WriteEndObject();
        }
        t.Depth = n;
        if (ts > t.LastTime) t.LastGap = ts - t.LastTime;
        t.LastTime = ts;
        Samples++;
        _json.Flush();
        _out.DrainIfOver();
    }

    private void CloseTo(ThreadState t, int depth, ulong ts)
    {
        for (int i = t.Depth - 1; i >= depth; i--)
        {
            _json.WriteStartObject();
            _json.WriteString("ph"u8, "E"u8);
            _json.WriteNumber("pid"u8, t.Pid);
            _json.WriteNumber("tid"u8, t.Tid);
            _json.WritePropertyName("ts"u8);
            JsonText.WriteMicroseconds(_json, ts);
            _json.WriteEndObject();
        }
        t.Depth = Math.Min(t.Depth, depth);
    }

    private void Metadata(int pid, int tid, ReadOnlySpan<byte> name, string value)
    {
        _json.WriteStartObject();
        _json.WriteString("ph"u8, "M"u8);
        _json.WriteNumber("pid"u8, pid);
        _json.WriteNumber("tid"u8, tid);
        _json.WriteString("name"u8, name);
        _json.WriteStartObject("args"u8);
        _json.WriteString("name"u8, value);
        _json.WriteEndObject();
        _json.WriteEndObject();
    }

    /// <summary>Pushes the events written so far to the stream (a JSON prefix) and flushes it.</summary>
    public void Flush()
    {
        _json.Flush();
        _out.Flush();
    }

    /// <summary>Closes every open slice, ends the document and flushes. Later calls do nothing.</summary>
    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        ulong max = _options.MaxSampleDurationNs;
        foreach (var t in _threads.Values.OrderBy(t => t.Tid))
            CloseTo(t, 0, t.LastTime + (t.LastGap > 0 ? Math.Min(t.LastGap, max) : max));
        _json.WriteEndArray();
        _json.WriteString("displayTimeUnit"u8, "ns"u8);
        _json.WriteStartObject("otherData"u8);
        _json.WriteString("exporter"u8, "traceunwind"u8);
        _json.WriteNumber("samples"u8, Samples);
        _json.WriteEndObject();
        _json.WriteEndObject();
        _json.Flush();
        _out.Flush();
        _json.Dispose();
        _out.Release();
    }
}
