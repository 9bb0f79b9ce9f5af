namespace TraceUnwind.Output;

/// <summary>What a stack's count adds up in aggregating outputs (fold, report, speedscope).</summary>
public enum SampleWeight : byte
{
    /// <summary>One per sample (stackcollapse-perf.pl's count).</summary>
    Samples,
    /// <summary>The sample period (<see cref="Model.Sample.Period"/>: nanoseconds for cpu-clock, events for cycles): what perf report weighs by.</summary>
    Period,
}
