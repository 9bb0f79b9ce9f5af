using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Perf.Deferred;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// Edge cases the real captures do not hold (or hold once), on <b>synthetic</b> captures built by
/// <see cref="DeferredSynth"/> from pieces of <c>recur-defer</c> (fixtures/README.md, perf-defer-synthetic).
/// Each test names the kernel behaviour it stands for (perf-data.md §1.4/1.5, deferred-capture.md).
/// </summary>
public sealed class DeferredJoinerSyntheticTests
{
    private const ulong C1 = 0x1_0000_0001, C2 = 0x2_0000_0001, C3 = 0x3_0000_0001, C4 = 0x4_0000_0001, C5 = 0x5_0000_0001, C6 = 0x6_0000_0002;
    private const ulong T = DeferredSynth.T0;

    private static (List<CopiedSample> Samples, ErrorTally Tally, DeferredJoinStats Stats) Join(byte[] data, DeferredJoinOptions? options = null,
        PerfRecordOrder order = PerfRecordOrder.Time)
    {
        var tally = new ErrorTally();
        DeferredCallchainJoiner? joiner = null;
        var read = new PerfReadOptions { Order = order, RecordStage = DeferredCallchainJoiner.Stage(tally, options, j => joiner = j) };
        var sink = new CollectingSink();
        new PerfSampleSource(new MemoryStream(data), "synthetic", read, tally).RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult();
        return (sink.Samples, tally, joiner!.Stats);
    }

    /// <summary>The template sample's kernel frames (the chain without markers and the trailing marker + cookie).</summary>
    private static ulong[] KernelPart()
    {
        var p = DeferredSynth.Recur.Value;
        Assert.True(new PerfSampleParser(p.Session).TryParseSample(p.KernelSample, 0, out var s, out _));
        return s.Callchain[..^2].ToArray().Where(a => a < PerfContext.Max).ToArray();
    }

    private static ulong[] Ips => DeferredSynth.Recur.Value.Ips;

    private static void AssertJoined(CopiedSample s, bool userMode = false)
    {
        var kernel = userMode ? [] : KernelPart();
        Assert.Equal(kernel.Concat(Ips), s.Frames.Select(f => f.Address));
        Assert.All(s.Frames.Take(kernel.Length), f => Assert.Equal(FrameKind.Kernel, f.Kind));
        Assert.All(s.Frames.Skip(kernel.Length), f => Assert.Equal(FrameKind.User, f.Kind));
        // The deferred ips resolve in the real capture's maps: leaf_work.. in /capture/bin/recur, then libc.
        Assert.Equal("/capture/bin/recur", s.Frames[kernel.Length].Mapping?.Path);
        Assert.Equal("/usr/lib/x86_64-linux-gnu/libc.so.6", s.Frames[kernel.Length + 8].Mapping?.Path);
    }

    private static void AssertLost(CopiedSample s, ulong cookie, bool userMode = false)
    {
        var kernel = userMode ? [] : KernelPart();
        Assert.Equal(kernel.Append(cookie), s.Frames.Select(f => f.Address));
        Assert.Equal(FrameKind.UserLost, s.Frames[^1].Kind);
        Assert.DoesNotContain(s.Frames, f => f.Kind is FrameKind.User or FrameKind.DeferredCookie);
    }

    private static CopiedSample At(List<CopiedSample> samples, int tid, ulong time) => samples.Single(s => s.Tid == tid && s.Time == time);

    [Fact]
    public void RecordBeforeItsSample()
    {
        // "Already executed": samples taken in the unwind task_work itself or a later task_work of the same
        // kernel entry name a cookie whose record already went by; no second record follows.
        var data = new DeferredSynth()
            .Deferred(360, T + 100, C1)
            .Sample(360, T + 200, C1)
            .Sample(360, T + 300, C1, userMode: true)
            .Sample(360, T + 400, C2)
            .Deferred(360, T + 500, C2)
            .Build();
        var (samples, tally, stats) = Join(data);
        Assert.Equal([T + 200, T + 300, T + 400], samples.Select(s => s.Time));
        AssertJoined(samples[0]);
        AssertJoined(samples[1], userMode: true);
        AssertJoined(samples[2]);
        Assert.Equal((2, 1, 0L), (stats.JoinedEarlier, stats.JoinedLater, stats.Lost));
        Assert.True(tally.IsEmpty, string.Join("; ", tally.Counts));
    }

    [Fact]
    public void RecordNeverArrives()
    {
        var data = new DeferredSynth()
            .Sample(360, T + 100, C1)            // the thread's next kernel entry (C2) comes first: lost
            .Sample(361, T + 150, C3)            // thread exits: lost
            .Sample(363, T + 160, C5)            // a record of another cookie of this thread comes: lost
            .Sample(360, T + 200, C2)
            .Exit(361, T + 250)
            .Deferred(363, T + 260, C6)
            .Deferred(360, T + 300, C2)
            .Sample(362, T + 400, C4)            // the input ends: lost
            .Build();
        var (samples, tally, stats) = Join(data);
        Assert.Equal(5, samples.Count);
        AssertLost(At(samples, 360, T + 100), C1);
        AssertLost(At(samples, 361, T + 150), C3);
        AssertLost(At(samples, 363, T + 160), C5);
        AssertLost(At(samples, 362, T + 400), C4);
        AssertJoined(At(samples, 360, T + 200));
        Assert.Equal((2L, 1L, 1L, 0L), (stats.LostNextEntry, stats.LostAtExit, stats.LostAtEnd, stats.LostOverflow));
        Assert.Equal(2, tally.CountOf("perf.deferred.lost-next-entry"));
        Assert.Equal(1, tally.CountOf("perf.deferred.lost-at-exit"));
        Assert.Equal(1, tally.CountOf("perf.deferred.lost-at-end"));
        Assert.Equal(0, tally.ErrorCount); // a notice, not damage
        Assert.Contains("tid 361", tally.ExamplesOf("perf.deferred.lost-at-exit")[0]);
        // Order: a lost sample goes out when the evidence arrives — the new cookie, the exit, the other record, the end.
        Assert.Equal([(360, T + 100), (361, T + 150), (363, T + 160), (360, T + 200), (362, T + 400)], samples.Select(s => (s.Tid, s.Time)));
    }

    [Fact]
    public void ExitThenAnEmptyRecordUnderSystemWide()
    {
        // -a: the unwind is flushed after PERF_RECORD_EXIT with the mm gone: an empty record may follow.
        var data = new DeferredSynth(systemWide: true)
            .Sample(361, T + 100, C3)
            .Exit(361, T + 150)
            .Deferred(361, T + 160, C3, ips: [])
            .Build();
        var (samples, tally, stats) = Join(data);
        AssertLost(Assert.Single(samples), C3);
        Assert.Equal((1L, 1L, 0L), (stats.LostAtExit, stats.Records, stats.LateRecords));
        Assert.Equal(0, tally.ErrorCount);
    }

    [Fact]
    public void DuplicateRecordsFromTwoDeferOutputEvents()
    {
        // defer_output on two events: "you will get duplicated PERF_RECORD_CALLCHAIN_DEFERRED records" (c69993ecdd4d).
        var data = new DeferredSynth(systemWide: true, deferOutputOnBoth: true)
            .Sample(360, T + 100, C1)
            .Sample(360, T + 150, C1)
            .Deferred(360, T + 200, C1, onSampleEvent: true)
            .Deferred(360, T + 200, C1)
            .Sample(360, T + 250, C1)
            .Build();
        var (samples, tally, stats) = Join(data);
        Assert.Equal(3, samples.Count);
        Assert.All(samples, s => AssertJoined(s));
        Assert.Equal((2L, 1L, 2L, 1L), (stats.JoinedLater, stats.JoinedEarlier, stats.Records, stats.DuplicateRecords));
        Assert.Equal(1, tally.CountOf("perf.deferred.duplicate-record"));
    }

    [Fact]
    public void RecordInALaterRoundOnAnotherCpu()
    {
        // The record sits in another CPU's buffer, drained in the next round, yet it is older than a
        // sample of the first round (the thread's next kernel entry): only time order joins it.
        var data = new DeferredSynth(systemWide: true)
            .Sample(360, T + 100, C1, cpu: 0)
            .Sample(360, T + 250, C2, cpu: 1)
            .Round()
            .Deferred(360, T + 200, C1, cpu: 1)
            .Deferred(360, T + 300, C2, cpu: 1)
            .Round()
            .Build();
        var (samples, tally, stats) = Join(data);
        Assert.Equal(2, samples.Count);
        Assert.All(samples, s => AssertJoined(s));
        Assert.Equal((2L, 0L), (stats.JoinedLater, stats.Lost));
        Assert.True(tally.IsEmpty);

        // The same records in file order: the first sample is lost and its record comes late — the joiner must sit after the sort.
        var (fileOrder, fileTally, fileStats) = Join(data, order: PerfRecordOrder.File);
        AssertLost(At(fileOrder, 360, T + 100), C1);
        Assert.Equal((1L, 1L, 1L), (fileStats.JoinedLater, fileStats.LostNextEntry, fileStats.LateRecords));
        Assert.Equal(1, fileTally.CountOf("perf.deferred.late-record"));
    }

    [Fact]
    public void UserModeSampleHasOnlyMarkerAndCookie()
    {
        // Sample taken in user mode: callchain = USER_DEFERRED, cookie (nr = 2); no kernel part.
        var data = new DeferredSynth()
            .Sample(360, T + 100, C1, userMode: true)
            .Sample(361, T + 150, C3, userMode: true)
            .Deferred(360, T + 200, C1)
            .Build();
        var (samples, _, stats) = Join(data);
        AssertJoined(At(samples, 360, T + 100), userMode: true);
        AssertLost(At(samples, 361, T + 150), C3, userMode: true);
        Assert.Equal((1L, 1L), (stats.JoinedLater, stats.LostAtEnd));
    }

    [Fact]
    public void DamagedRecordIsCountedAndItsSamplesLost()
    {
        var data = new DeferredSynth()
            .Sample(360, T + 100, C1)
            .Deferred(360, T + 200, C1, nrOverride: 1000) // nr beyond the record's size
            .Sample(360, T + 300, C2)
            .Deferred(360, T + 400, C2)
            .Build();
        var (samples, tally, stats) = Join(data);
        Assert.Equal(1, tally.CountOf("perf.record.damaged"));
        Assert.Contains("nr", tally.ExamplesOf("perf.record.damaged")[0]);
        AssertLost(At(samples, 360, T + 100), C1);
        AssertJoined(At(samples, 360, T + 300));
        Assert.Equal((1L, 1L, 1L), (stats.Records, stats.LostNextEntry, stats.JoinedLater));
    }

    [Fact]
    public void SystemWideRecordsCarryTheDummyEventsId()
    {
        // perf record -a: cpu-clock has defer_callchain, dummy:u has defer_output; records carry the dummy's id.
        var data = new DeferredSynth(systemWide: true)
            .Sample(360, T + 100, C1, cpu: 0)
            .Sample(361, T + 110, C3, cpu: 1)
            .Deferred(360, T + 200, C1, cpu: 1)
            .Deferred(361, T + 210, C3, cpu: 0)
            .Build();
        var (samples, tally, stats) = Join(data);
        Assert.Equal(2, samples.Count);
        Assert.All(samples, s => { AssertJoined(s); Assert.Equal("cpu-clock", s.Event); });
        Assert.Equal(2, stats.JoinedLater);
        Assert.True(tally.IsEmpty);

        // --no-merge: the records show on their own, under the event they were written to.
        var (raw, _, _) = Run.Samples(new MemoryStream(data), "synthetic", new PerfReadOptions { EmitDeferredCallchains = true });
        Assert.Equal(["cpu-clock", "cpu-clock", "dummy:u", "dummy:u"], raw.Select(s => s.Event));
        Assert.Equal([C1, C3], raw.Where(s => s.Kind == SampleKind.DeferredCallchain).Select(s => s.Cookie));
        Assert.All(raw.Where(s => s.Kind == SampleKind.Event), s => Assert.Equal(FrameKind.DeferredCookie, s.Frames[^1].Kind));
    }

    [Fact]
    public void InlineUserChainsOfADeferEventPassThrough()
    {
        // The kernel refuses to defer (PF_EXITING, no user regs): the same event gives a classic inline chain.
        var chain = new[] { PerfContext.Kernel }.Concat(KernelPart()).Append(PerfContext.User).Concat(Ips).ToArray();
        var data = new DeferredSynth()
            .Sample(360, T + 100, C1)
            .Sample(360, T + 150, 0, chain: chain)
            .Deferred(360, T + 200, C1)
            .Build();
        var (samples, _, stats) = Join(data);
        Assert.Equal([T + 150, T + 100], samples.Select(s => s.Time)); // the held one goes out with its record
        Assert.All(samples, s => AssertJoined(s));
        Assert.Equal((1L, 1L), (stats.DeferredSamples, stats.JoinedLater));
    }

    [Fact]
    public void PendingCapOverflowIsCounted()
    {
        var data = new DeferredSynth()
            .Sample(360, T + 100, C1)
            .Sample(361, T + 110, C2)
            .Sample(362, T + 120, C3)   // a third waiting sample: the oldest goes out lost
            .Deferred(360, T + 200, C1)
            .Deferred(361, T + 210, C2)
            .Deferred(362, T + 220, C3)
            .Build();
        var (samples, tally, stats) = Join(data, new DeferredJoinOptions { MaxPendingSamples = 2 });
        Assert.Equal(3, samples.Count);
        AssertLost(samples[0], C1);
        AssertJoined(At(samples, 361, T + 110));
        AssertJoined(At(samples, 362, T + 120));
        Assert.Equal((1L, 2L, 2), (stats.LostOverflow, stats.JoinedLater, stats.PeakPending));
        Assert.Equal(1, tally.CountOf("perf.deferred.lost-overflow"));
        Assert.Contains("--max-pending", tally.ExamplesOf("perf.deferred.lost-overflow")[0]);

        // The byte cap: room for one sample copy only.
        var (bySize, sizeTally, sizeStats) = Join(data, new DeferredJoinOptions { MaxPendingBytes = DeferredSynth.Recur.Value.KernelSample.Length });
        Assert.Equal(3, bySize.Count);
        Assert.Equal((2L, 1L), (sizeStats.LostOverflow, sizeStats.JoinedLater));
        Assert.Equal(2, sizeTally.CountOf("perf.deferred.lost-overflow"));
    }

    [Fact]
    public void CacheCapOverflowIsCounted()
    {
        var data = new DeferredSynth()
            .Deferred(360, T + 100, C1)
            .Deferred(361, T + 110, C2)  // the cache holds one thread: 360's stack is pushed out
            .Sample(360, T + 120, C1)    // would have been stitched; waits, then the input ends
            .Sample(361, T + 130, C2)
            .Build();
        var (samples, tally, stats) = Join(data, new DeferredJoinOptions { MaxCachedStacks = 1 });
        AssertLost(At(samples, 360, T + 120), C1);
        AssertJoined(At(samples, 361, T + 130));
        Assert.Equal((1L, 1L, 1L), (stats.CacheEvictions, stats.JoinedEarlier, stats.LostAtEnd));
        Assert.Equal(1, tally.CountOf("perf.deferred.cache-overflow"));

        var (roomy, _, roomyStats) = Join(data);
        Assert.Equal(2, roomyStats.JoinedEarlier);
        Assert.All(roomy, s => AssertJoined(s));
    }

    [Fact]
    public void JoinedChainLongerThanOneRecordIsBuiltWhole()
    {
        // A kernel part and a deferred stack of 6000 entries each (real chains stop at perf_event_max_stack, 127 by
        // default; a damaged or crafted capture need not): the joined sample has more frames than one record can hold.
        var kernel = Enumerable.Range(0, 6000).Select(i => 0xffffffff81000000UL + (ulong)i * 16).ToArray();
        var chain = new[] { PerfContext.Kernel }.Concat(kernel).Append(PerfContext.UserDeferred).Append(C1).ToArray();
        var ips = Enumerable.Range(0, 6000).Select(i => 0x5000_0000UL + (ulong)i * 4).ToArray();
        var data = new DeferredSynth().Sample(360, T + 100, 0, chain: chain).Deferred(360, T + 200, C1, ips: ips).Build();
        var (samples, tally, stats) = Join(data);
        var s = Assert.Single(samples);
        Assert.Equal(kernel.Concat(ips), s.Frames.Select(f => f.Address));
        Assert.Equal(6000, s.Frames.Count(f => f.Kind == FrameKind.Kernel));
        Assert.Equal(6000, s.Frames.Count(f => f.Kind == FrameKind.User));
        Assert.Equal(1, stats.JoinedLater);
        Assert.Equal(0, tally.ErrorCount);
    }

    [Fact]
    public void RecordsWithoutSampleIdMatchByCookie()
    {
        // No sample_id_all: the record carries no tid (nor time); cookies are unique (CPU + per-CPU counter).
        // Without a time it is delivered as it comes, so the sample must already be out of the time-order
        // queue: two round markers flush it.
        var data = new DeferredSynth(sampleIdAll: false)
            .Sample(360, T + 100, C1)
            .Round().Round()
            .Deferred(360, T + 200, C1)
            .Build();
        var (samples, tally, stats) = Join(data);
        AssertJoined(Assert.Single(samples));
        Assert.Equal(1, stats.RecordsWithoutTid);
        Assert.Equal(1, tally.CountOf("perf.deferred.record-without-tid"));
    }
}
