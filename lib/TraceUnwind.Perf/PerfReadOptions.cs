using TraceUnwind.Unwinding;

namespace TraceUnwind.Perf;

/// <summary>In which order records reach the handler.</summary>
public enum PerfRecordOrder
{
    /// <summary>perf's time order (FINISHED_ROUND rule; see <see cref="RoundSorter"/>): what perf script and perf report see.</summary>
    Time,
    /// <summary>As stored (compressed records unpacked): for copying a file record by record.</summary>
    File,
}

/// <summary>Options of <see cref="PerfRecordReader"/> and <see cref="PerfSampleSource"/>.</summary>
public sealed class PerfReadOptions
{
    /// <summary>Unwinds <c>--call-graph dwarf</c> samples (REGS_USER + STACK_USER); without one the user part is the sampled ip.</summary>
    public IUserStackUnwinder? Unwinder { get; set; }

    /// <summary>Called now and then (every few MiB and at the end) with bytes read and samples delivered.</summary>
    public Action<long, long>? Progress { get; set; }

    /// <summary>How many exited processes/threads the process table remembers (samples can name them after their EXIT).</summary>
    public int MaxExitedProcesses { get; set; } = 4096;

    public PerfRecordOrder Order { get; set; } = PerfRecordOrder.Time;

    /// <summary>Bytes of records the time-order queue may hold before it delivers the older half early (perf's OE_FLUSH__HALF).</summary>
    public long MaxQueuedBytes { get; set; } = 256L << 20;

    /// <summary>
    /// A stage between time ordering and sample building: given the session and the next handler
    /// (the sample builder), returns the handler the reader should call. The deferred-callchain
    /// joiner plugs in here (<c>Deferred.DeferredCallchainJoiner.Stage(...)</c>): it holds samples whose chain ends in USER_DEFERRED + cookie
    /// (copying <c>Record.Bytes</c>; <see cref="PerfSampleParser"/> decodes the copy later) and forwards them
    /// with <see cref="PerfSample.Callchain"/> replaced by perf's merged form and
    /// <see cref="PerfSample.DeferredResolution"/> set. Null: records go straight to the sample builder.
    /// </summary>
    public Func<PerfSession, IPerfRecordHandler, IPerfRecordHandler>? RecordStage { get; set; }

    /// <summary>
    /// Also emit every PERF_RECORD_CALLCHAIN_DEFERRED as a sample of kind
    /// <see cref="TraceUnwind.Model.SampleKind.DeferredCallchain"/> (like perf script <c>--no-merge-callchains</c>).
    /// </summary>
    public bool EmitDeferredCallchains { get; set; }

    /// <summary>Read-buffer size for the input (bytes).</summary>
    public int BufferSize { get; set; } = 1 << 20;
}
