namespace TraceUnwind.Model;

/// <summary>What a <see cref="Sample"/> stands for.</summary>
public enum SampleKind : byte
{
    /// <summary>An event with its stack (a perf sample, an ftrace event with its stack blocks).</summary>
    Event,
    /// <summary>
    /// A PERF_RECORD_CALLCHAIN_DEFERRED shown on its own (<c>--no-merge</c>): <see cref="Sample.Cookie"/>
    /// is set and <see cref="Sample.Frames"/> holds the deferred user frames.
    /// </summary>
    DeferredCallchain,
}

/// <summary>
/// One sample in the model every front end produces and every output consumes. A view:
/// valid only during <see cref="ISampleSink.OnSample"/>; a sink that keeps anything copies or
/// interns it. Frames are innermost first: kernel frames, then user frames.
/// </summary>
public ref struct Sample
{
    /// <summary>0-based number of this sample in its stream.</summary>
    public long Index;
    /// <summary>Timestamp in nanoseconds (perf clock, or the ftrace clock scaled to ns); 0 if unknown.</summary>
    public ulong Time;
    /// <summary>Process id (thread group), -1 if unknown.</summary>
    public int Pid;
    /// <summary>Thread id, -1 if unknown.</summary>
    public int Tid;
    /// <summary>CPU, -1 if unknown.</summary>
    public int Cpu;
    /// <summary>Sample period (weight); 1 for ftrace events.</summary>
    public ulong Period;
    /// <summary>The sampled ip (perf PERF_SAMPLE_IP), 0 if not recorded.</summary>
    public ulong Ip;
    /// <summary>Thread name.</summary>
    public string Comm;
    /// <summary>Event name (<c>cpu-clock</c>, <c>sched:sched_switch</c>, ftrace event name).</summary>
    public string Event;
    /// <summary>Stack, innermost first.</summary>
    public ReadOnlySpan<Frame> Frames;
    public SampleKind Kind;
    /// <summary>The deferred-callchain cookie for <see cref="SampleKind.DeferredCallchain"/>.</summary>
    public ulong Cookie;
}

/// <summary>A consumer of samples: outputs (folded, CSV, script, report, JSON) and test probes.</summary>
public interface ISampleSink
{
    /// <summary>One sample; the view is valid only during this call.</summary>
    void OnSample(in Sample sample);

    /// <summary>The front end has no more input for now (a pipe went idle): write out what is complete.</summary>
    void Flush();

    /// <summary>End of input: write totals, close output.</summary>
    void Complete();
}

/// <summary>A front end: reads one input and sends its samples to a sink.</summary>
public interface ISampleSource
{
    /// <summary>Runs to the end of the input or until <paramref name="cancellationToken"/> fires.</summary>
    Task RunAsync(ISampleSink sink, CancellationToken cancellationToken);
}
