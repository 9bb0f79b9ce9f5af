namespace TraceUnwind.Perf.Deferred;

/// <summary>
/// Caps of <see cref="DeferredCallchainJoiner"/>. An endless pipe-mode stream must not grow the
/// joiner without limit: a sample waiting past a cap goes out with a lost user stack
/// (<c>perf.deferred.lost-overflow</c>), a cached stack pushed out is counted
/// (<c>perf.deferred.cache-overflow</c>). Nothing falls out silently.
/// </summary>
public sealed class DeferredJoinOptions
{
    /// <summary>Samples that may wait for their deferred record at once (CLI <c>--max-pending</c>).</summary>
    public int MaxPendingSamples { get; set; } = 65536;

    /// <summary>Bytes of waiting sample records (their copies) at once.</summary>
    public long MaxPendingBytes { get; set; } = 64L << 20;

    /// <summary>
    /// Threads whose last deferred user stack is kept for samples that name its cookie after the
    /// record (CLI <c>--max-pending</c> too). One stack per thread is all the kernel's cookie
    /// semantics can ever use (see <see cref="DeferredCallchainJoiner"/>).
    /// </summary>
    public int MaxCachedStacks { get; set; } = 65536;

    internal void Validate()
    {
        if (MaxPendingSamples < 1) throw new ArgumentOutOfRangeException(nameof(MaxPendingSamples), MaxPendingSamples, "at least 1");
        if (MaxPendingBytes < 1) throw new ArgumentOutOfRangeException(nameof(MaxPendingBytes), MaxPendingBytes, "at least 1");
        if (MaxCachedStacks < 1) throw new ArgumentOutOfRangeException(nameof(MaxCachedStacks), MaxCachedStacks, "at least 1");
    }
}

/// <summary>What <see cref="DeferredCallchainJoiner"/> did, by outcome (every deferred sample is in exactly one of the Joined/Lost counts).</summary>
public sealed class DeferredJoinStats
{
    /// <summary>Samples whose chain ended in PERF_CONTEXT_USER_DEFERRED + cookie.</summary>
    public long DeferredSamples { get; internal set; }
    /// <summary>Joined with a deferred record that came after them (perf 7.2 merges these too).</summary>
    public long JoinedLater { get; internal set; }
    /// <summary>Joined with the cached record of their (tid, cookie) that came before them (perf 7.2 does not).</summary>
    public long JoinedEarlier { get; internal set; }
    /// <summary>Lost: the thread's next kernel entry (a new cookie, or a record of another cookie) came first.</summary>
    public long LostNextEntry { get; internal set; }
    /// <summary>Lost: the thread exited (PERF_RECORD_EXIT) with the sample waiting.</summary>
    public long LostAtExit { get; internal set; }
    /// <summary>Lost: still waiting at the end of the input.</summary>
    public long LostAtEnd { get; internal set; }
    /// <summary>Lost: pushed out by <see cref="DeferredJoinOptions.MaxPendingSamples"/> / <see cref="DeferredJoinOptions.MaxPendingBytes"/>.</summary>
    public long LostOverflow { get; internal set; }
    /// <summary>Lost: the sample has no tid (no PERF_SAMPLE_TID), so nothing can be matched to it.</summary>
    public long LostNoTid { get; internal set; }

    /// <summary>PERF_RECORD_CALLCHAIN_DEFERRED records seen.</summary>
    public long Records { get; internal set; }
    /// <summary>A second record of a (tid, cookie) already joined (<c>defer_output</c> on several events): ignored.</summary>
    public long DuplicateRecords { get; internal set; }
    /// <summary>A record of a cookie the thread had already left (out of time order): ignored.</summary>
    public long LateRecords { get; internal set; }
    /// <summary>Records without a tid (no sample_id_all), matched by cookie alone.</summary>
    public long RecordsWithoutTid { get; internal set; }
    /// <summary>Cached stacks pushed out by <see cref="DeferredJoinOptions.MaxCachedStacks"/>.</summary>
    public long CacheEvictions { get; internal set; }
    /// <summary>Most samples waiting at once.</summary>
    public int PeakPending { get; internal set; }

    public long Joined => JoinedLater + JoinedEarlier;
    public long Lost => LostNextEntry + LostAtExit + LostAtEnd + LostOverflow + LostNoTid;

    public override string ToString() =>
        $"{DeferredSamples} deferred samples: {JoinedLater} joined, {JoinedEarlier} joined with an earlier record, " +
        $"{Lost} lost ({LostNextEntry} next entry, {LostAtExit} exit, {LostAtEnd} end, {LostOverflow} overflow, {LostNoTid} no tid); " +
        $"{Records} records ({DuplicateRecords} duplicate, {LateRecords} late, {RecordsWithoutTid} without tid); " +
        $"{CacheEvictions} cache evictions; peak {PeakPending} waiting";
}

/// <summary>
/// Told where held samples go, so a consumer that writes records in order (<c>PerfInjector</c>)
/// can keep a held sample's place: <see cref="OnHeld"/> when the joiner takes a sample in,
/// <see cref="OnReleased"/> right before it passes that sample (joined or lost) to the next handler.
/// Hold ids increase by one per held sample.
/// </summary>
public interface IDeferredHoldObserver
{
    void OnHeld(long holdId);
    void OnReleased(long holdId);
    /// <summary>The held sample could not be decoded again and goes nowhere (counted as <c>perf.deferred.reparse-failed</c>).</summary>
    void OnDropped(long holdId);
}
