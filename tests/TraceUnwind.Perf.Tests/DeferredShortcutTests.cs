using TraceUnwind.Diagnostics;
using TraceUnwind.Perf.Deferred;
using TraceUnwind.Testing;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// Two shortcuts of the joiner must change nothing. (1) When the joiner is the reader's first handler, the reader
/// hands it deferred samples of a fixed layout undecoded (<c>IDeferredSampleStage</c>; they are decoded once, when
/// they go on). (2) When the joiner's next handler is the sample builder, a joined sample goes to it in two parts
/// (its chain up to the marker, the record's ips: <c>PerfSampleBuilder.OnJoinedSample</c>) instead of perf's merged
/// chain. Each input runs three times: with both shortcuts; behind a pass-through stage (which hides (1), so every
/// sample is decoded and reaches <see cref="DeferredCallchainJoiner.OnSample"/>); and with a pass-through stage
/// between the joiner and the builder (which hides (2): the builder gets the merged chain). The samples (every
/// field, every frame with its mapping), the joiner's counts and the error summary must be the same.
/// Inputs: the real fp,defer captures (little- and big-endian), a replicated one (synthetic, many threads
/// one after the other), the synthetic edge cases of <see cref="DeferredJoinerSyntheticTests"/>, and tight caps.
/// </summary>
public sealed class DeferredShortcutTests
{
    private const ulong C1 = 0x1_0000_0001, C2 = 0x2_0000_0001, C3 = 0x3_0000_0001, C4 = 0x4_0000_0001, C5 = 0x5_0000_0001, C6 = 0x6_0000_0002;
    private const ulong T = DeferredSynth.T0;

    /// <summary>Passes everything on: a first stage that is not the joiner, so the reader decodes every sample.</summary>
    private sealed class PassThrough(IPerfRecordHandler next) : IPerfRecordHandler
    {
        public void OnSample(in PerfSample s) => next.OnSample(in s);
        public void OnMmap(in PerfMmap m) => next.OnMmap(in m);
        public void OnComm(in PerfComm c) => next.OnComm(in c);
        public void OnFork(in PerfTaskEvent f) => next.OnFork(in f);
        public void OnExit(in PerfTaskEvent e) => next.OnExit(in e);
        public void OnDeferredCallchain(in PerfDeferredCallchain d) => next.OnDeferredCallchain(in d);
        public void OnOtherRecord(in PerfRecord r) => next.OnOtherRecord(in r);
        public void OnIdle() => next.OnIdle();
        public void OnEnd() => next.OnEnd();
    }

    private sealed record Result(List<string> Samples, List<string> Tally, string Stats, long Undecoded);

    private static Result Run(byte[] data, bool hideShortcut, DeferredJoinOptions? options, PerfRecordOrder order, bool mergedChains = false)
    {
        var tally = new ErrorTally();
        DeferredCallchainJoiner? joiner = null;
        var read = new PerfReadOptions
        {
            Order = order,
            RecordStage = (session, next) =>
            {
                joiner = new DeferredCallchainJoiner(session, mergedChains ? new PassThrough(next) : next, tally, options);
                return hideShortcut ? new PassThrough(joiner) : joiner;
            },
        };
        var sink = new CollectingSink();
        new PerfSampleSource(new MemoryStream(data), "input", read, tally).RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult();
        var samples = sink.Samples.Select(s =>
            $"{s.Index} {s.Time} {s.Pid}/{s.Tid} cpu {s.Cpu} period {s.Period} ip {s.Ip:x} {s.Comm} {s.Event} {s.Kind} {s.Cookie:x}: "
            + string.Join(" ", s.Frames.Select(f => $"{f.Address:x}/{f.Kind}/{f.Flags}/{f.Mapping?.Path}@{f.Mapping?.Start:x}"))).ToList();
        var counts = tally.Counts.Select(c => $"{c.Code} {c.Severity} {c.Count}: " + string.Join(" | ", tally.ExamplesOf(c.Code))).ToList();
        var st = joiner!.Stats;
        string stats = $"{st} / {st.DeferredSamples} {st.JoinedLater} {st.JoinedEarlier} {st.LostNextEntry} {st.LostAtExit} {st.LostAtEnd} {st.LostOverflow} "
            + $"{st.LostNoTid} {st.Records} {st.DuplicateRecords} {st.LateRecords} {st.RecordsWithoutTid} {st.CacheEvictions} {st.PeakPending}";
        return new Result(samples, counts, stats, joiner.TakenUndecoded);
    }

    /// <summary>Both ways give the same; returns the shortcut run (for the callers' checks that it was taken).</summary>
    private static Result AssertSame(byte[] data, DeferredJoinOptions? options = null, PerfRecordOrder order = PerfRecordOrder.Time)
    {
        var direct = Run(data, hideShortcut: false, options, order);
        var decoded = Run(data, hideShortcut: true, options, order);
        var merged = Run(data, hideShortcut: false, options, order, mergedChains: true);
        Assert.Equal(0, decoded.Undecoded);
        Assert.Equal(direct.Undecoded, merged.Undecoded);
        foreach (var other in new[] { direct, merged })
        {
            Assert.Equal(decoded.Stats, other.Stats);
            Assert.Equal(decoded.Tally, other.Tally);
            Assert.Equal(decoded.Samples.Count, other.Samples.Count);
            for (int i = 0; i < decoded.Samples.Count; i++) Assert.Equal(decoded.Samples[i], other.Samples[i]);
        }
        return direct;
    }

    private static byte[] Fixture(string capture) => File.ReadAllBytes(Fixtures.Path("perf-defer", capture, "perf.data"));

    // capture, deferred samples held undecoded (all but the two recur-defer samples joined with an earlier record)
    [Theory]
    [InlineData("recur-defer", 862)]
    [InlineData("bash-defer", 1071)]
    [InlineData("bash-fp", 0)]
    public void RealCapturesJoinTheSame(string capture, long undecoded)
    {
        var r = AssertSame(Fixture(capture));
        Assert.Equal(undecoded, r.Undecoded);
    }

    [Fact]
    public void BigEndianCopyJoinsTheSame()
    {
        byte[] be = ByteOrderTests.Transcode(Fixtures.Path("perf-defer", "recur-defer", "perf.data"), bigEndian: true, out _, out _, out _);
        Assert.Equal(862, AssertSame(be).Undecoded);
    }

    [Fact]
    public void ReplicatedCaptureJoinsTheSame()
    {
        var ms = new MemoryStream();
        CaptureReplicator.Write(Fixtures.Path("perf-defer", "recur-defer", "perf.data"), ms, 3);
        Assert.Equal(3 * 862, AssertSame(ms.ToArray()).Undecoded);
    }

    [Theory]
    [InlineData(1, 65536)]   // every second waiting sample pushes the first out
    [InlineData(3, 65536)]
    [InlineData(65536, 1)]   // one cached stack
    public void TightCapsGiveTheSame(int maxPending, int maxCached)
    {
        var options = new DeferredJoinOptions { MaxPendingSamples = maxPending, MaxCachedStacks = maxCached };
        var r = AssertSame(Fixture("bash-defer"), options);
        Assert.True(r.Undecoded > 1000, $"{r.Undecoded} held undecoded");
        if (maxPending == 1) Assert.Contains(r.Tally, t => t.StartsWith("perf.deferred.lost-overflow "));
        var ms = new MemoryStream();
        CaptureReplicator.Write(Fixtures.Path("perf-defer", "recur-defer", "perf.data"), ms, 2);
        AssertSame(ms.ToArray(), options);
    }

    public static TheoryData<string> Synthetic => new(Cases.Keys);

    private static readonly Dictionary<string, Func<(byte[] Data, DeferredJoinOptions? Options)>> Cases = new()
    {
        ["record before its sample"] = () => (new DeferredSynth()
            .Deferred(360, T + 100, C1).Sample(360, T + 200, C1).Sample(360, T + 300, C1, userMode: true)
            .Sample(360, T + 400, C2).Deferred(360, T + 500, C2).Build(), null),
        ["record never arrives"] = () => (new DeferredSynth()
            .Sample(360, T + 100, C1).Sample(361, T + 150, C3).Sample(363, T + 160, C5).Sample(360, T + 200, C2)
            .Exit(361, T + 250).Deferred(363, T + 260, C6).Deferred(360, T + 300, C2).Sample(362, T + 400, C4).Build(), null),
        ["exit then an empty record (-a)"] = () => (new DeferredSynth(systemWide: true)
            .Sample(361, T + 100, C3).Exit(361, T + 150).Deferred(361, T + 160, C3, ips: []).Build(), null),
        ["duplicate records"] = () => (new DeferredSynth(systemWide: true, deferOutputOnBoth: true)
            .Sample(360, T + 100, C1).Sample(360, T + 150, C1).Deferred(360, T + 200, C1, onSampleEvent: true)
            .Deferred(360, T + 200, C1).Sample(360, T + 250, C1).Build(), null),
        ["record in a later round on another cpu"] = () => (new DeferredSynth(systemWide: true)
            .Sample(360, T + 100, C1, cpu: 0).Sample(360, T + 250, C2, cpu: 1).Round()
            .Deferred(360, T + 200, C1, cpu: 1).Deferred(360, T + 300, C2, cpu: 1).Round().Build(), null),
        ["user-mode samples"] = () => (new DeferredSynth()
            .Sample(360, T + 100, C1, userMode: true).Sample(361, T + 150, C3, userMode: true).Deferred(360, T + 200, C1).Build(), null),
        ["damaged record"] = () => (new DeferredSynth()
            .Sample(360, T + 100, C1).Deferred(360, T + 200, C1, nrOverride: 1000).Sample(360, T + 300, C2)
            .Deferred(360, T + 400, C2).Build(), null),
        ["late record"] = () => (new DeferredSynth()
            .Sample(360, T + 100, C1).Sample(360, T + 200, C2).Deferred(360, T + 300, C1).Deferred(360, T + 400, C2).Build(), null),
        ["pending cap"] = () => (new DeferredSynth()
            .Sample(360, T + 100, C1).Sample(361, T + 110, C2).Sample(362, T + 120, C3)
            .Deferred(360, T + 200, C1).Deferred(361, T + 210, C2).Deferred(362, T + 220, C3).Build(),
            new DeferredJoinOptions { MaxPendingSamples = 2 }),
        ["pending byte cap"] = () => (new DeferredSynth()
            .Sample(360, T + 100, C1).Sample(361, T + 110, C2).Sample(362, T + 120, C3)
            .Deferred(360, T + 200, C1).Deferred(361, T + 210, C2).Deferred(362, T + 220, C3).Build(),
            new DeferredJoinOptions { MaxPendingBytes = DeferredSynth.Recur.Value.KernelSample.Length }),
        ["cache cap"] = () => (new DeferredSynth()
            .Deferred(360, T + 100, C1).Deferred(361, T + 110, C2).Sample(360, T + 120, C1).Sample(361, T + 130, C2).Build(),
            new DeferredJoinOptions { MaxCachedStacks = 1 }),
        ["records without sample_id"] = () => (new DeferredSynth(sampleIdAll: false)
            .Sample(360, T + 100, C1).Round().Round().Deferred(360, T + 200, C1).Build(), null),
        ["inline chain of a defer event"] = () => (new DeferredSynth()
            .Sample(360, T + 100, C1)
            .Sample(360, T + 150, 0, chain: [PerfContext.User, 0x401000, 0x401100])
            .Deferred(360, T + 200, C1).Build(), null),
    };

    [Theory]
    [MemberData(nameof(Synthetic))]
    public void SyntheticCasesJoinTheSame(string name)
    {
        var (data, options) = Cases[name]();
        var r = AssertSame(data, options);
        AssertSame(data, options, PerfRecordOrder.File);
        // The shortcut is taken wherever a sample waits (the synthetic samples have the real capture's fixed layout;
        // -a adds IDENTIFIER and CPU, still fixed).
        Assert.True(r.Undecoded > 0, $"{name}: no sample was held undecoded");
    }
}
