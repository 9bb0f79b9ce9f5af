using System.Runtime.ExceptionServices;
using TraceUnwind.Model;

namespace TraceUnwind.Perf;

/// <summary>
/// Runs a sink on a thread of its own: <see cref="OnSample"/> copies each sample (header and frames)
/// into a batch; full batches go to the sink's thread through a small bounded ring, which replays
/// them as <see cref="Sample"/> views, in order. So reading, ordering and frame building go on while
/// the previous samples are formatted (2 cores: about the time of the slower half instead of the sum).
/// <para>
/// Order is kept exactly: samples, then a <see cref="Flush"/> where the front end asked for one; the
/// sink's <see cref="ISampleSink.Complete"/> is called on its thread by <see cref="Finish"/>, which
/// waits for it. Nothing is allocated per sample: a fixed set of batches is reused (their arrays keep
/// the strings and mappings of recent samples until overwritten, while the run lasts). The sample
/// builder writes frames straight into the batch (<see cref="FrameSpace"/>, <see cref="OnSampleInPlace"/>).
/// A sink that throws stops its thread; the
/// exception is rethrown, as it is, to the front end at its next batch (or by <see cref="Finish"/>), so
/// an <see cref="IOException"/> for a closed output ends the run as it would on one thread.
/// </para>
/// </summary>
internal sealed class PipelinedSink : ISampleSink
{
    private const int Depth = 3;                  // batches in flight (one being filled, one formatted, one queued)
    private const int BatchSamples = 1024;
    private const int BatchFrames = 32 * 1024;    // >= PerfSampleBuilder.MaxFrames, so any sample fits an empty batch

    private struct Header
    {
        public long Index;
        public ulong Time, Period, Ip, Cookie;
        public int Pid, Tid, Cpu, FrameStart, FrameCount;
        public SampleKind Kind;
        public string Comm, Event;
    }

    private sealed class Batch
    {
        public readonly Header[] Samples = new Header[BatchSamples];
        public readonly Frame[] Frames = new Frame[Math.Max(BatchFrames, PerfSampleBuilder.MaxFrames)];
        public int SampleCount, FrameCount;
        public bool FlushAfter;
        public bool Last;       // the end: no batch follows
        public bool Complete;   // with Last: call the sink's Complete

        public void Reset()
        {
            // The old samples and frames stay until overwritten (at most the batches' worth of strings
            // and mappings kept alive, and only while the run lasts: nothing holds the batches after
            // it); clearing them here would only make the reading thread fetch the lines back from
            // this thread's cache.
            SampleCount = FrameCount = 0;
            FlushAfter = Last = Complete = false;
        }
    }

    private readonly ISampleSink _sink;
    private readonly object _lock = new();
    private readonly Batch[] _queue = new Batch[Depth];
    private readonly Stack<Batch> _free = new();
    private int _head, _count;
    private Batch _current;
    private Thread? _thread;
    private ExceptionDispatchInfo? _failure;
    private bool _finished;

    public PipelinedSink(ISampleSink sink)
    {
        _sink = sink;
        for (int i = 0; i < Depth; i++) _free.Push(new Batch());
        _current = new Batch();
    }

    public void OnSample(in Sample sample)
    {
        var frames = sample.Frames;
        frames.CopyTo(FrameSpace(frames.Length));
        OnSampleInPlace(in sample);
    }

    /// <summary>
    /// Room for a sample of up to <paramref name="count"/> frames in the batch being filled (which goes
    /// out first if it has not that much left): the front end builds the frames there and then calls
    /// <see cref="OnSampleInPlace"/>, so they are not copied again.
    /// </summary>
    public Span<Frame> FrameSpace(int count)
    {
        var b = _current;
        if (b.SampleCount == BatchSamples || b.Frames.Length - b.FrameCount < count) b = Send(b);
        return b.Frames.AsSpan(b.FrameCount, count);
    }

    /// <summary>Adds <paramref name="sample"/>, whose frames are at the start of the last <see cref="FrameSpace"/>.</summary>
    public void OnSampleInPlace(in Sample sample)
    {
        var b = _current;
        var frames = sample.Frames;
        ref var h = ref b.Samples[b.SampleCount++];
        h.Index = sample.Index;
        h.Time = sample.Time;
        h.Pid = sample.Pid;
        h.Tid = sample.Tid;
        h.Cpu = sample.Cpu;
        h.Period = sample.Period;
        h.Ip = sample.Ip;
        h.Comm = sample.Comm;
        h.Event = sample.Event;
        h.Kind = sample.Kind;
        h.Cookie = sample.Cookie;
        h.FrameStart = b.FrameCount;
        h.FrameCount = frames.Length;
        b.FrameCount += frames.Length;
    }

    /// <summary>The front end has nothing more for now: what is batched goes out, and the sink flushes after it.</summary>
    public void Flush()
    {
        _current.FlushAfter = true;
        Send(_current);
    }

    /// <summary>Not used: the end goes through <see cref="Finish"/>.</summary>
    public void Complete() => Finish(complete: true);

    /// <summary>
    /// Sends what is batched and waits for the sink's thread to deliver it; with <paramref name="complete"/>
    /// the sink's <see cref="ISampleSink.Complete"/> runs there last. Rethrows the sink's exception, if any.
    /// Without <paramref name="complete"/> (the front end failed), the samples read so far are still
    /// delivered and the sink is left for the caller, as on one thread.
    /// </summary>
    public void Finish(bool complete)
    {
        if (_finished) return;
        _finished = true;
        var b = _current;
        b.Last = true;
        b.Complete = complete;
        if (_thread is null && b.SampleCount == 0 && !b.FlushAfter)
        {
            // Nothing ever went to the other thread: finish here.
            if (complete) _sink.Complete();
            return;
        }
        try
        {
            Enqueue(b);
        }
        finally
        {
            _thread?.Join();
        }
        _failure?.Throw();
    }

    /// <summary>Queues <paramref name="b"/> and returns an empty batch to fill next.</summary>
    private Batch Send(Batch b)
    {
        Enqueue(b);
        lock (_lock)
        {
            while (_free.Count == 0 && _failure is null) Monitor.Wait(_lock);
            _failure?.Throw();
            return _current = _free.Pop();
        }
    }

    private void Enqueue(Batch b)
    {
        if (_thread is null)
        {
            _thread = new Thread(Consume) { IsBackground = true, Name = "traceunwind sink" };
            _thread.Start();
        }
        lock (_lock)
        {
            while (_count == Depth && _failure is null) Monitor.Wait(_lock);
            _failure?.Throw();
            _queue[(_head + _count) % Depth] = b;
            _count++;
            Monitor.PulseAll(_lock);
        }
    }

    private void Consume()
    {
        try
        {
            while (true)
            {
                Batch b;
                lock (_lock)
                {
                    while (_count == 0) Monitor.Wait(_lock);
                    b = _queue[_head];
                }
                for (int i = 0; i < b.SampleCount; i++)
                {
                    ref var h = ref b.Samples[i];
                    var sample = new Sample
                    {
                        Index = h.Index, Time = h.Time, Pid = h.Pid, Tid = h.Tid, Cpu = h.Cpu, Period = h.Period, Ip = h.Ip,
                        Comm = h.Comm, Event = h.Event, Kind = h.Kind, Cookie = h.Cookie,
                        Frames = b.Frames.AsSpan(h.FrameStart, h.FrameCount),
                    };
                    _sink.OnSample(in sample);
                }
                if (b.FlushAfter) _sink.Flush();
                bool last = b.Last;
                if (last && b.Complete) _sink.Complete();
                b.Reset();
                lock (_lock)
                {
                    _head = (_head + 1) % Depth;
                    _count--;
                    if (!last) _free.Push(b);
                    Monitor.PulseAll(_lock);
                }
                if (last) return;
            }
        }
        catch (Exception e)
        {
            lock (_lock)
            {
                _failure = ExceptionDispatchInfo.Capture(e);
                Monitor.PulseAll(_lock);
            }
        }
    }
}
