using System.Numerics;
using System.Runtime.CompilerServices;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Perf.Deferred;

/// <summary>
/// Joins samples whose callchain ends in <c>PERF_CONTEXT_USER_DEFERRED, cookie</c> with the
/// PERF_RECORD_CALLCHAIN_DEFERRED record of the same thread and cookie (Linux 6.19+,
/// <c>perf record --call-graph fp,defer</c>). A stage between perf's time ordering and the sample
/// builder (<see cref="PerfReadOptions.RecordStage"/>; <see cref="Stage"/> makes the factory).
///
/// <para><b>What a cookie means</b> (kernel/unwind/deferred.c, c69993ecdd4d): one kernel entry of
/// one task. It is assigned at the first deferred request after the task entered the kernel, shared
/// by every later request of that entry, and cleared on the way back to user space. The record is
/// written by task_work right before that return (same tid, later time, possibly another CPU and,
/// under <c>-a</c>, another event: the <c>dummy:u</c> one with <c>defer_output</c>). Therefore, in time
/// order and per thread:</para>
/// <list type="number">
/// <item>all samples of a cookie come before the thread's next kernel entry, and its record (if any)
/// comes before that next entry's samples or record;</item>
/// <item>a sample may still name a cookie whose record already went by (taken inside the unwind
/// task_work itself or a later task_work of the same entry, e.g. <c>__fput</c>): "already executed",
/// no second record follows;</item>
/// <item>a sample of a task that never returns to user space (exit_group) gets no record; under
/// <c>-a</c> an empty one (nr = 0, the mm is gone) may follow the thread's PERF_RECORD_EXIT.</item>
/// </list>
/// <para>So one state per thread suffices: its current cookie, and either the samples waiting for
/// it (pending) or the record's stack (resolved, kept for rule 2). Matching is by (tid, cookie), never
/// by event id.</para>
/// <list type="bullet">
/// <item>Deferred sample, thread resolved with the same cookie: joined now with the cached stack
/// (perf 7.2 prints the cookie as a user frame there).</item>
/// <item>Deferred sample, same cookie pending: waits too (up to 30 samples share one record in real captures;
/// all get the stack).</item>
/// <item>Deferred sample with a new cookie: the thread has left its previous entry. Samples still
/// waiting for the old cookie can never get a record (rule 1): they go out lost; the cached stack is dropped.</item>
/// <item>Record of the pending cookie: every waiting sample goes out joined, in arrival order; the stack is cached.
/// A record of another cookie ends the pending one the same way (perf does so too) — unless it is a
/// late record (its cookie is the one the thread already left, or it is older than the waiting samples or the cached record),
/// which is counted and ignored. A second record of a joined cookie is a duplicate (<c>defer_output</c> on
/// several events): counted, ignored.</item>
/// <item>PERF_RECORD_EXIT of the thread: waiting samples go out lost (rule 3; the user stack died with the
/// mm), before the exit reaches the next stage. End of input: every waiting sample goes out lost.</item>
/// </list>
/// <para>Joined samples take perf's merged form (<see cref="PerfDeferredResolution.Joined"/>: the chain
/// without its cookie, then the record's ips; the marker acts as PERF_CONTEXT_USER), so the builder
/// names their user frames with the maps and comm of the moment they go out — the record's position,
/// as perf 7.2 does. Lost samples keep their chain with <see cref="PerfDeferredResolution.Lost"/>: one
/// <c>FrameKind.UserLost</c> frame, never the cookie as an address. Each lost sample is counted by reason
/// in the <see cref="ErrorTally"/> (<c>perf.deferred.lost-*</c>, notices).</para>
/// <para><b>Output order</b>: a held sample goes out when its stack arrives (or is known lost), after
/// samples that came behind it — perf 7.2's own order, so <c>script</c> output stays diffable with
/// <c>perf script</c>; <c>Sample.Time</c> keeps the sample's own time. The delay is the time to the
/// task's return to user space (microseconds to milliseconds, longer for blocking syscalls).
/// A stage that needs file order (the injector) keeps the place with <see cref="IDeferredHoldObserver"/>.</para>
/// <para><b>Memory</b>: waiting samples are copies of their records, capped by <see cref="DeferredJoinOptions"/>;
/// they live in a recycled array of entries, each keeping its byte buffer for the next sample (a buffer over
/// 4 KiB is let go instead). One cached stack per thread, least recently used out first. After warm-up nothing
/// is allocated per sample; the hot path writes no object references (int links, no GC write barriers).</para>
/// <para><b>Cost</b> (bench/defer/RESULTS.md): as the reader's first stage the joiner takes deferred samples of a fixed
/// layout undecoded (<see cref="IDeferredSampleStage"/>: the reader reads only tid, time and cookie), so a held sample is
/// decoded once, when it goes on, into a local of the byte-order-specific decoder (<c>PerfSampleParser.TryDeliverJoined</c>);
/// when the next stage is the <see cref="PerfSampleBuilder"/> it gets the two parts (chain up to the marker, the record's
/// ips) without a merged copy (<c>PerfSampleBuilder.OnJoinedSample</c>). Any other next stage gets perf's merged chain.</para>
/// </summary>
[SkipLocalsInit] // PerfSample locals are large and always assigned before use.
public sealed class DeferredCallchainJoiner : IPerfRecordHandler, IDeferredSampleStage
{
    private const string LostNextEntryCode = "perf.deferred.lost-next-entry";
    private const string LostAtExitCode = "perf.deferred.lost-at-exit";
    private const string LostAtEndCode = "perf.deferred.lost-at-end";
    private const string LostOverflowCode = "perf.deferred.lost-overflow";
    private const string LostNoTidCode = "perf.deferred.lost-no-tid";
    private const string DuplicateCode = "perf.deferred.duplicate-record";
    private const string LateCode = "perf.deferred.late-record";
    private const string NoTidRecordCode = "perf.deferred.record-without-tid";
    private const string CacheOverflowCode = "perf.deferred.cache-overflow";
    private const string ReparseCode = "perf.deferred.reparse-failed";

    /// <summary>Callchain entries a record can hold (64 KiB / 8), for the merged chain's scratch.</summary>
    private const int MaxChainWords = 8192;
    /// <summary>An entry keeps its buffer for the next sample up to this size.</summary>
    private const int KeepBufferBytes = 4096;
    private const int None = -1;

    private readonly PerfSession _session;
    private readonly IPerfRecordHandler _next;
    private readonly ErrorTally _tally;
    private readonly DeferredJoinOptions _options;
    private readonly IDeferredHoldObserver? _observer;
    private readonly PerfSampleParser _parser;
    private readonly Dictionary<int, ThreadSlot> _threads = new();
    // The last thread looked up (samples and records of one thread come in runs); null after removals.
    private ThreadSlot? _last;
    private readonly Stack<ThreadSlot> _freeSlots = new();
    private readonly ulong[] _chain = new ulong[2 * MaxChainWords];

    // Waiting samples: entries of _held linked by index; oldest first (hold order) through Older/Newer,
    // and per thread through NextInThread. Free entries are chained through NextInThread from _free.
    private Held[] _held = new Held[64];
    private int _free = None, _used;
    private int _oldest = None, _newest = None;
    private int _pending;
    private long _pendingBytes;
    private long _nextHoldId;
    private bool _delivering;

    // Resolved threads (with a cached stack), least recently used first, linked by slot id.
    private ThreadSlot[] _slotById = new ThreadSlot[16];
    private int _slotsMade;
    private int _lruHead = None, _lruTail = None;
    private int _cached;

    /// <param name="session">The input's session (events, byte order) to re-decode held copies.</param>
    /// <param name="next">Where samples and every other record go (the sample builder, the injector).</param>
    /// <param name="tally">Where lost samples and odd records are counted.</param>
    /// <param name="options">Caps; null for defaults.</param>
    /// <param name="observer">Told about held samples (the injector); null for none.</param>
    public DeferredCallchainJoiner(PerfSession session, IPerfRecordHandler next, ErrorTally tally,
        DeferredJoinOptions? options = null, IDeferredHoldObserver? observer = null)
    {
        _session = session ?? throw new ArgumentNullException(nameof(session));
        _next = next ?? throw new ArgumentNullException(nameof(next));
        _tally = tally ?? throw new ArgumentNullException(nameof(tally));
        _options = options ?? new DeferredJoinOptions();
        _options.Validate();
        _observer = observer;
        _parser = new PerfSampleParser(session);
    }

    /// <summary>A <see cref="PerfReadOptions.RecordStage"/> factory that puts a joiner before the next handler.</summary>
    /// <param name="created">Called with each joiner made (to read its <see cref="Stats"/> later).</param>
    public static Func<PerfSession, IPerfRecordHandler, IPerfRecordHandler> Stage(ErrorTally tally, DeferredJoinOptions? options = null,
        Action<DeferredCallchainJoiner>? created = null) =>
        (session, next) =>
        {
            var j = new DeferredCallchainJoiner(session, next, tally, options);
            created?.Invoke(j);
            return j;
        };

    public DeferredJoinStats Stats { get; } = new();
    /// <summary>Samples waiting now.</summary>
    public int PendingSamples => _pending;
    /// <summary>Bytes of waiting sample copies now.</summary>
    public long PendingBytes => _pendingBytes;
    /// <summary>Threads with a cached stack now.</summary>
    public int CachedStacks => _cached;
    /// <summary>Deferred samples the reader handed over undecoded (<see cref="IDeferredSampleStage"/>; for tests).</summary>
    internal long TakenUndecoded { get; private set; }

    // ------------------------------------------------------------------ records

    public void OnSample(in PerfSample s)
    {
        if (!s.HasDeferredUserCallchain)
        {
            _next.OnSample(in s);
            return;
        }
        Stats.DeferredSamples++;
        ulong cookie = s.DeferredCookie;
        if (s.Tid < 0)
        {
            DeliverNoTid(s);
            return;
        }

        if (TryGetSlot(s.Tid, out var slot))
        {
            if (slot.Cookie == cookie)
            {
                if (slot.Resolved)
                {
                    // "Already executed": the record of this kernel entry went by before this sample.
                    Stats.JoinedEarlier++;
                    Touch(slot);
                    DeliverJoinedNow(s, slot.Stack.AsSpan(0, slot.StackLength));
                    return;
                }
                Hold(slot, s.Record.Bytes, s.Record.FileOffset, s.Event.Index, s.Time);
                return;
            }
            // A new kernel entry of this thread: the old cookie is over.
            LeaveEntry(slot, LostReason.NextEntry);
        }
        else slot = NewSlot(s.Tid);
        slot.Cookie = cookie;
        Hold(slot, s.Record.Bytes, s.Record.FileOffset, s.Event.Index, s.Time);
    }

    /// <summary>
    /// <see cref="OnSample"/> for a deferred sample the reader has not decoded (it is decoded once, when it goes on):
    /// every case that holds it. A sample joined at once with a cached stack goes the ordinary way.
    /// </summary>
    bool IDeferredSampleStage.TryTakeDeferred(ReadOnlySpan<byte> record, long fileOffset, PerfEvent ev, int tid, ulong time, ulong cookie)
    {
        if (TryGetSlot(tid, out var slot))
        {
            if (slot.Cookie == cookie)
            {
                if (slot.Resolved) return false;
                Stats.DeferredSamples++;
                TakenUndecoded++;
                Hold(slot, record, fileOffset, ev.Index, time);
                return true;
            }
            Stats.DeferredSamples++;
            LeaveEntry(slot, LostReason.NextEntry);
        }
        else
        {
            Stats.DeferredSamples++;
            slot = NewSlot(tid);
        }
        slot.Cookie = cookie;
        TakenUndecoded++;
        Hold(slot, record, fileOffset, ev.Index, time);
        return true;
    }

    public void OnDeferredCallchain(in PerfDeferredCallchain d)
    {
        Stats.Records++;
        int tid = d.Record.SampleId.Tid;
        if (tid < 0)
        {
            RecordWithoutTid(d);
            return;
        }

        if (!TryGetSlot(tid, out var slot))
        {
            // No sample waits: keep the stack for samples of this entry that may still come (rule 2).
            slot = NewSlot(tid);
            slot.Cookie = d.Cookie;
            Cache(slot, d.Ips, RecordTime(d));
        }
        else if (slot.Cookie == d.Cookie)
        {
            if (slot.Resolved) Duplicate(d);
            else Resolve(slot, d);
        }
        else if (IsLate(slot, d)) Late(d, slot);
        else
        {
            // The record of a later kernel entry: whatever waits for the current cookie never gets one.
            LeaveEntry(slot, LostReason.NextEntry);
            slot.Cookie = d.Cookie;
            Cache(slot, d.Ips, RecordTime(d));
        }
        _next.OnDeferredCallchain(in d);
    }

    public void OnExit(in PerfTaskEvent exit)
    {
        if (_threads.TryGetValue(exit.Tid, out var slot))
        {
            // Waiting samples go out before the exit reaches the builder (comm and maps as the thread had them).
            ReleasePending(slot, LostReason.Exit);
            RemoveSlot(slot);
        }
        _next.OnExit(in exit);
    }

    public void OnEnd()
    {
        while (_oldest != None) ReleaseOldest(LostReason.End);
        _next.OnEnd();
    }

    public void OnMmap(in PerfMmap mmap) => _next.OnMmap(in mmap);
    public void OnComm(in PerfComm comm) => _next.OnComm(in comm);
    public void OnFork(in PerfTaskEvent fork) => _next.OnFork(in fork);
    public void OnOtherRecord(in PerfRecord record) => _next.OnOtherRecord(in record);
    // A quiet pipe is no evidence: the task may return to user space any time.
    public void OnIdle() => _next.OnIdle();

    /// <summary>
    /// Lets the oldest waiting sample go as lost (<c>perf.deferred.lost-overflow</c>). For a consumer
    /// that bounds what it queues behind held samples (the injector). False when nothing waits, or when called
    /// while the joiner is handing a held sample to the next handler (try again at the next record).
    /// </summary>
    public bool ReleaseOldest()
    {
        // Not from inside a release (the next handler is being given a held sample): the lists are in motion.
        if (_oldest == None || _delivering) return false;
        ReleaseOldest(LostReason.Overflow);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RecordWithoutTid(in PerfDeferredCallchain d)
    {
        // No sample_id (sample_id_all off): cookies are unique across the system (CPU + per-CPU counter),
        // so match the waiting thread by cookie alone. Without a time such a record is not time-ordered:
        // it can only find samples already out of the time-order queue.
        Stats.RecordsWithoutTid++;
        Count(NoTidRecordCode, d.Record.FileOffset, "the deferred record has no tid (no sample_id_all): matched by cookie alone");
        var slot = FindPendingByCookie(d.Cookie);
        if (slot is not null) Resolve(slot, d);
        _next.OnDeferredCallchain(in d);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Duplicate(in PerfDeferredCallchain d)
    {
        Stats.DuplicateRecords++;
        Count(DuplicateCode, d.Record.FileOffset,
            $"a second deferred record for tid {d.Record.SampleId.Tid} cookie 0x{d.Cookie:x} (defer_output on several events?): ignored");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Late(in PerfDeferredCallchain d, ThreadSlot slot)
    {
        Stats.LateRecords++;
        Count(LateCode, d.Record.FileOffset,
            $"deferred record for tid {d.Record.SampleId.Tid} cookie 0x{d.Cookie:x} arrives after the thread's later kernel entry 0x{slot.Cookie:x}: ignored");
    }

    // ------------------------------------------------------------------ pending samples

    private enum LostReason : byte { NextEntry, Exit, End, Overflow }

    private struct Held
    {
        public byte[]? Buffer;
        public int Length;
        public int Tid;
        public long FileOffset;
        /// <summary>The sample's event (index in the session), so the copy decodes again without a lookup.</summary>
        public int Event;
        public long HoldId;
        public ulong Time;
        public int NextInThread;
        public int Older, Newer;
    }

    private sealed class ThreadSlot
    {
        public int Tid;
        public ulong Cookie;
        /// <summary>The record of <see cref="Cookie"/> came: <see cref="Stack"/> holds it, nothing waits.</summary>
        public bool Resolved;
        public ulong[] Stack = new ulong[32];
        public int StackLength;
        /// <summary>Time of the cached record (0 if unknown).</summary>
        public ulong RecordTime;
        /// <summary>Waiting samples: entries of the joiner's array, oldest first.</summary>
        public int Head = None, Tail = None, Count;
        /// <summary>The cookie this thread left last (its late records are ignored).</summary>
        public ulong LeftCookie;
        public bool HasLeft;
        /// <summary>Receiving a sample right now: not removed when its last waiting sample goes.</summary>
        public bool Pinned;
        /// <summary>Index in the joiner's slot table; the LRU list links by index (no GC write barriers).</summary>
        public int Id;
        public int LruPrev = None, LruNext = None;
    }

    private void Hold(ThreadSlot slot, ReadOnlySpan<byte> bytes, long fileOffset, int eventIndex, ulong time)
    {
        if (_pending > 0 && (_pending >= _options.MaxPendingSamples || _pendingBytes + bytes.Length > _options.MaxPendingBytes))
            MakeRoom(slot, bytes.Length);
        int i = NewEntry();
        ref var h = ref _held[i];
        if (h.Buffer is null || h.Buffer.Length < bytes.Length) h.Buffer = new byte[Math.Max(256, (int)BitOperations.RoundUpToPowerOf2((uint)bytes.Length))];
        bytes.CopyTo(h.Buffer);
        h.Length = bytes.Length;
        h.Tid = slot.Tid;
        h.FileOffset = fileOffset;
        h.Event = eventIndex;
        h.HoldId = _nextHoldId++;
        h.Time = time;
        h.NextInThread = None;
        if (slot.Tail == None) slot.Head = i; else _held[slot.Tail].NextInThread = i;
        slot.Tail = i;
        slot.Count++;
        h.Older = _newest;
        h.Newer = None;
        if (_newest == None) _oldest = i; else _held[_newest].Newer = i;
        _newest = i;
        _pending++;
        _pendingBytes += bytes.Length;
        if (_pending > Stats.PeakPending) Stats.PeakPending = _pending;
        _observer?.OnHeld(h.HoldId);
    }

    /// <summary>Lets the oldest samples go until this one fits. The slot about to receive it stays, even with nothing waiting.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void MakeRoom(ThreadSlot slot, int bytes)
    {
        slot.Pinned = true;
        while (_pending > 0 && (_pending >= _options.MaxPendingSamples || _pendingBytes + bytes > _options.MaxPendingBytes))
            ReleaseOldest(LostReason.Overflow);
        slot.Pinned = false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int NewEntry()
    {
        if (_free != None)
        {
            int i = _free;
            _free = _held[i].NextInThread;
            return i;
        }
        if (_used == _held.Length) Array.Resize(ref _held, _held.Length * 2);
        return _used++;
    }

    /// <summary>Takes entry <paramref name="i"/> off the hold-order list (its thread list is the caller's).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Unlink(int i)
    {
        ref var h = ref _held[i];
        if (h.Older == None) _oldest = h.Newer; else _held[h.Older].Newer = h.Newer;
        if (h.Newer == None) _newest = h.Older; else _held[h.Newer].Older = h.Older;
        _pending--;
        _pendingBytes -= h.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Recycle(int i)
    {
        ref var h = ref _held[i];
        if (h.Buffer is { Length: > KeepBufferBytes }) h.Buffer = null;
        h.NextInThread = _free;
        _free = i;
    }

    /// <summary>Releases the globally oldest waiting sample as lost; it is the head of its thread's list.</summary>
    private void ReleaseOldest(LostReason reason)
    {
        int i = _oldest;
        var slot = _threads[_held[i].Tid];
        slot.Head = _held[i].NextInThread;
        if (slot.Head == None) slot.Tail = None;
        slot.Count--;
        Unlink(i);
        DeliverLost(i, reason);
        Recycle(i);
        if (slot.Count == 0 && !slot.Resolved && !slot.Pinned) RemoveSlot(slot);
    }

    /// <summary>Releases every waiting sample of <paramref name="slot"/> as lost, oldest first.</summary>
    private void ReleasePending(ThreadSlot slot, LostReason reason)
    {
        int i = slot.Head;
        slot.Head = slot.Tail = None;
        slot.Count = 0;
        while (i != None)
        {
            int next = _held[i].NextInThread;
            Unlink(i);
            DeliverLost(i, reason);
            Recycle(i);
            i = next;
        }
    }

    /// <summary>The thread leaves its current kernel entry: waiting samples are lost, the cached stack dropped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void LeaveEntry(ThreadSlot slot, LostReason reason)
    {
        ulong left = slot.Cookie;
        if (slot.Head != None) ReleasePending(slot, reason);
        if (slot.Resolved) Uncache(slot);
        slot.LeftCookie = left;
        slot.HasLeft = true;
        // The slot stays (it remembers the cookie it left); the caller gives it its new cookie.
    }

    /// <summary>The record of the pending cookie: every waiting sample goes out joined; the stack is cached.</summary>
    private void Resolve(ThreadSlot slot, in PerfDeferredCallchain d)
    {
        int i = slot.Head;
        slot.Head = slot.Tail = None;
        slot.Count = 0;
        while (i != None)
        {
            int next = _held[i].NextInThread;
            Unlink(i);
            Stats.JoinedLater++;
            DeliverJoined(i, d.Ips);
            Recycle(i);
            i = next;
        }
        Cache(slot, d.Ips, RecordTime(d));
    }

    /// <summary>
    /// A record whose cookie is not the thread's current one is late (out of time order) when it is the
    /// cookie the thread already left, or when it is older than the samples waiting now or the cached record.
    /// </summary>
    private bool IsLate(ThreadSlot slot, in PerfDeferredCallchain d)
    {
        if (slot.HasLeft && slot.LeftCookie == d.Cookie) return true;
        ulong t = RecordTime(d);
        if (t == 0) return false;
        ulong current = slot.Resolved ? slot.RecordTime : slot.Head != None ? _held[slot.Head].Time : 0;
        return current != 0 && t < current;
    }

    private static ulong RecordTime(in PerfDeferredCallchain d) => d.Record.SampleId.HasTime ? d.Record.SampleId.Time : 0;

    private ThreadSlot? FindPendingByCookie(ulong cookie)
    {
        foreach (var (_, slot) in _threads)
            if (!slot.Resolved && slot.Count > 0 && slot.Cookie == cookie) return slot;
        return null;
    }

    // ------------------------------------------------------------------ thread slots and the stack cache

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryGetSlot(int tid, out ThreadSlot slot)
    {
        var last = _last;
        if (last is not null && last.Tid == tid)
        {
            slot = last;
            return true;
        }
        if (!_threads.TryGetValue(tid, out slot!)) return false;
        _last = slot;
        return true;
    }

    private ThreadSlot NewSlot(int tid)
    {
        if (!_freeSlots.TryPop(out var slot))
        {
            slot = new ThreadSlot { Id = _slotsMade++ };
            if (slot.Id == _slotById.Length) Array.Resize(ref _slotById, _slotById.Length * 2);
            _slotById[slot.Id] = slot;
        }
        slot.Tid = tid;
        slot.Cookie = 0;
        slot.Resolved = false;
        slot.StackLength = 0;
        slot.Head = slot.Tail = None;
        slot.Count = 0;
        slot.HasLeft = false;
        slot.LeftCookie = 0;
        slot.LruPrev = slot.LruNext = None;
        _threads[tid] = slot;
        _last = slot;
        return slot;
    }

    private void RemoveSlot(ThreadSlot slot)
    {
        if (slot.Resolved) Uncache(slot);
        _threads.Remove(slot.Tid);
        if (_last == slot) _last = null;
        _freeSlots.Push(slot);
    }

    private void Cache(ThreadSlot slot, ReadOnlySpan<ulong> ips, ulong time)
    {
        if (slot.Stack.Length < ips.Length) slot.Stack = new ulong[Math.Max(ips.Length, slot.Stack.Length * 2)];
        ips.CopyTo(slot.Stack);
        slot.StackLength = ips.Length;
        slot.RecordTime = time;
        if (!slot.Resolved)
        {
            slot.Resolved = true;
            _cached++;
            slot.LruPrev = _lruTail;
            slot.LruNext = None;
            if (_lruTail == None) _lruHead = slot.Id; else _slotById[_lruTail].LruNext = slot.Id;
            _lruTail = slot.Id;
        }
        else Touch(slot);
        if (_cached > _options.MaxCachedStacks) EvictCached(slot);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EvictCached(ThreadSlot keep)
    {
        while (_cached > _options.MaxCachedStacks && _lruHead != None && _lruHead != keep.Id)
        {
            var victim = _slotById[_lruHead];
            Stats.CacheEvictions++;
            Count(CacheOverflowCode, -1,
                $"more than {_options.MaxCachedStacks} threads had a deferred user stack cached: tid {victim.Tid}'s (cookie 0x{victim.Cookie:x}) was dropped (raise --max-pending)");
            RemoveSlot(victim);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Uncache(ThreadSlot slot)
    {
        if (slot.LruPrev == None) _lruHead = slot.LruNext; else _slotById[slot.LruPrev].LruNext = slot.LruNext;
        if (slot.LruNext == None) _lruTail = slot.LruPrev; else _slotById[slot.LruNext].LruPrev = slot.LruPrev;
        slot.LruPrev = slot.LruNext = None;
        slot.Resolved = false;
        slot.StackLength = 0;
        _cached--;
    }

    private void Touch(ThreadSlot slot)
    {
        if (_lruTail == slot.Id) return;
        if (slot.LruPrev == None) _lruHead = slot.LruNext; else _slotById[slot.LruPrev].LruNext = slot.LruNext;
        _slotById[slot.LruNext].LruPrev = slot.LruPrev;
        slot.LruPrev = _lruTail;
        slot.LruNext = None;
        _slotById[_lruTail].LruNext = slot.Id;
        _lruTail = slot.Id;
    }

    // ------------------------------------------------------------------ delivery

    /// <summary>perf's <c>sample__merge_deferred_callchain</c>: the chain without its cookie (the marker stays), then the deferred ips.</summary>
    private ReadOnlySpan<ulong> Merge(ReadOnlySpan<ulong> chain, ReadOnlySpan<ulong> ips)
    {
        int keep = chain.Length - 1;
        chain[..keep].CopyTo(_chain);
        int n = Math.Min(ips.Length, _chain.Length - keep);
        ips[..n].CopyTo(_chain.AsSpan(keep));
        return _chain.AsSpan(0, keep + n);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void DeliverJoinedNow(in PerfSample s, ReadOnlySpan<ulong> ips)
    {
        var j = s;
        j.Callchain = Merge(s.Callchain, ips);
        j.DeferredResolution = PerfDeferredResolution.Joined;
        _next.OnSample(in j);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void DeliverNoTid(in PerfSample s)
    {
        // Without PERF_SAMPLE_TID nothing says whose kernel entry the cookie names.
        Stats.LostNoTid++;
        Count(LostNoTidCode, s.Record.FileOffset, "the sample has no tid, so no deferred record can be matched to it");
        var lost = s;
        lost.DeferredResolution = PerfDeferredResolution.Lost;
        _next.OnSample(in lost);
    }

    /// <summary>The held copy as a sample again (it decoded once, with the same session).</summary>
    private bool Redecode(in Held h, out PerfSample s)
    {
        if (_parser.TryDecodeAgain(h.Buffer.AsSpan(0, h.Length), h.FileOffset, _session.Events[h.Event], out s)) return true;
        ReparseFailed(h, "the copy no longer decodes");
        return false;
    }

    private void DeliverJoined(int i, ReadOnlySpan<ulong> ips)
    {
        ref var h = ref _held[i];
        if (_observer is not null)
        {
            DeliverJoinedObserved(i, ips);
            return;
        }
        // No try/finally: if the next handler throws, the run is over anyway.
        _delivering = true;
        bool ok = _parser.TryDeliverJoined(h.Buffer.AsSpan(0, h.Length), h.FileOffset, _session.Events[h.Event], ips, _chain, _next);
        _delivering = false;
        if (!ok) ReparseFailed(h, "the copy no longer decodes");
    }

    /// <summary>As <see cref="DeliverJoined"/>, telling the observer (the injector) first.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void DeliverJoinedObserved(int i, ReadOnlySpan<ulong> ips)
    {
        ref var h = ref _held[i];
        if (!Redecode(h, out var s)) return;
        s.Callchain = Merge(s.Callchain, ips);
        s.DeferredResolution = PerfDeferredResolution.Joined;
        _observer!.OnReleased(h.HoldId);
        _delivering = true;
        _next.OnSample(in s);
        _delivering = false;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void DeliverLost(int i, LostReason reason)
    {
        ref var h = ref _held[i];
        if (!Redecode(h, out var s)) return;
        switch (reason)
        {
            case LostReason.NextEntry: Stats.LostNextEntry++; break;
            case LostReason.Exit: Stats.LostAtExit++; break;
            case LostReason.End: Stats.LostAtEnd++; break;
            default: Stats.LostOverflow++; break;
        }
        CountLost(h, s.DeferredCookie, reason);
        s.DeferredResolution = PerfDeferredResolution.Lost;
        _observer?.OnReleased(h.HoldId);
        // No try/finally: if the next handler throws, the run is over anyway.
        _delivering = true;
        _next.OnSample(in s);
        _delivering = false;
    }

    private void ReparseFailed(in Held h, string? error)
    {
        // It decoded once already; this can only mean the session changed under it.
        _tally.Add(ReparseCode, new InputPosition(_session.SourceName, h.FileOffset), $"held sample could not be decoded again: {error}");
        _observer?.OnDropped(h.HoldId);
    }

    private void CountLost(in Held h, ulong cookie, LostReason reason)
    {
        string code = reason switch
        {
            LostReason.NextEntry => LostNextEntryCode,
            LostReason.Exit => LostAtExitCode,
            LostReason.End => LostAtEndCode,
            _ => LostOverflowCode,
        };
        if (!_tally.WantsExample(code))
        {
            _tally.Count(code);
            return;
        }
        string why = reason switch
        {
            LostReason.NextEntry => "the thread entered the kernel again before its deferred user stack was written",
            LostReason.Exit => "the thread exited before its deferred user stack was written",
            LostReason.End => "the input ended before its deferred user stack",
            _ => $"the cap on samples waiting for their deferred user stack ({_options.MaxPendingSamples} samples, {_options.MaxPendingBytes} bytes) was reached (raise --max-pending)",
        };
        _tally.Add(code, new InputPosition(_session.SourceName, h.FileOffset),
            $"sample of tid {h.Tid} at time {h.Time}, cookie 0x{cookie:x}: {why}; shown with [deferred user stack lost]", TallySeverity.Notice);
    }

    private void Count(string code, long fileOffset, string? message)
    {
        if (message is not null && _tally.WantsExample(code))
            _tally.Add(code, new InputPosition(_session.SourceName, fileOffset), message, TallySeverity.Notice);
        else _tally.Count(code);
    }
}
