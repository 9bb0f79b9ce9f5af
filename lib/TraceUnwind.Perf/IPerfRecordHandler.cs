namespace TraceUnwind.Perf;

/// <summary>
/// Receives the records of a perf.data input, decoded, in the order chosen by
/// <see cref="PerfReadOptions.Order"/> (time order the way perf sorts them, by default).
/// Every argument is a view valid only during the call: a handler that keeps something copies it
/// (the raw bytes are in <c>Record.Bytes</c>; <see cref="PerfSampleParser"/> decodes a kept copy again).
///
/// Stages chain: the reader calls the first handler, which may hold, change or drop records and
/// call the next (the deferred-callchain joiner sits between time ordering and
/// <see cref="PerfSampleBuilder"/>; see <see cref="PerfReadOptions.RecordStage"/>).
/// </summary>
public interface IPerfRecordHandler
{
    /// <summary>PERF_RECORD_SAMPLE.</summary>
    void OnSample(in PerfSample sample);
    /// <summary>PERF_RECORD_MMAP and PERF_RECORD_MMAP2.</summary>
    void OnMmap(in PerfMmap mmap);
    /// <summary>PERF_RECORD_COMM (<see cref="PerfComm.IsExec"/> for an exec).</summary>
    void OnComm(in PerfComm comm);
    /// <summary>PERF_RECORD_FORK.</summary>
    void OnFork(in PerfTaskEvent fork);
    /// <summary>PERF_RECORD_EXIT.</summary>
    void OnExit(in PerfTaskEvent exit);
    /// <summary>PERF_RECORD_CALLCHAIN_DEFERRED.</summary>
    void OnDeferredCallchain(in PerfDeferredCallchain deferred);
    /// <summary>
    /// Every other known record (LOST, THROTTLE, KSYMBOL, ..., and the perf-synthesized ones:
    /// HEADER_ATTR, FINISHED_ROUND after its flush, ID_INDEX, HEADER_FEATURE, ...). COMPRESSED
    /// records are not passed on: the records inside them are. Unknown types are skipped and counted.
    /// </summary>
    void OnOtherRecord(in PerfRecord record);
    /// <summary>The input has no more bytes for now (a pipe went quiet): a chance to flush output.</summary>
    void OnIdle();
    /// <summary>End of input, after the final flush of the time-order queue.</summary>
    void OnEnd();
}

/// <summary>A handler that ignores everything; override what you need.</summary>
public abstract class PerfRecordHandler : IPerfRecordHandler
{
    public virtual void OnSample(in PerfSample sample) { }
    public virtual void OnMmap(in PerfMmap mmap) { }
    public virtual void OnComm(in PerfComm comm) { }
    public virtual void OnFork(in PerfTaskEvent fork) { }
    public virtual void OnExit(in PerfTaskEvent exit) { }
    public virtual void OnDeferredCallchain(in PerfDeferredCallchain deferred) { }
    public virtual void OnOtherRecord(in PerfRecord record) { }
    public virtual void OnIdle() { }
    public virtual void OnEnd() { }
}

/// <summary>
/// A first stage that can take a SAMPLE whose callchain ends in <c>PERF_CONTEXT_USER_DEFERRED, cookie</c>
/// straight from its bytes, before it is decoded (the deferred-callchain joiner holds it; it is decoded once,
/// when it goes on). The reader offers only samples of a fixed layout (<c>SampleLayout.CallchainAt</c>) whose
/// decode cannot fail, with a tid.
/// </summary>
internal interface IDeferredSampleStage
{
    /// <summary>
    /// False: the stage wants the sample decoded and passed to <see cref="IPerfRecordHandler.OnSample"/> as usual.
    /// <paramref name="time"/> is 0 when the event samples no time.
    /// </summary>
    bool TryTakeDeferred(ReadOnlySpan<byte> record, long fileOffset, PerfEvent ev, int tid, ulong time, ulong cookie);
}
