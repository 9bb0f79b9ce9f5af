using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Perf.Deferred;
using TraceUnwind.Testing;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// The joiner on the real <c>--call-graph fp,defer</c> captures (Linux 7.2.13), against perf 7.2.13's
/// merged <c>perf script -F comm,pid,tid,time,event,ip,sym,dso,symoff</c> (<c>script-F.txt.gz</c>):
/// every sample perf merged has perf's stack, frame for frame (address, kind, dso); every sample perf
/// left with its cookie is joined by us with the stack of its cookie's earlier record (checked against
/// the record in perf's <c>--no-merge-callchains</c> output) or marked lost; the counts are pinned.
/// </summary>
public sealed class DeferredJoinerRealTests
{
    internal static (List<CopiedSample> Samples, ErrorTally Tally, DeferredJoinStats Stats) Join(string capture, DeferredJoinOptions? options = null)
    {
        var tally = new ErrorTally();
        DeferredCallchainJoiner? joiner = null;
        var read = new PerfReadOptions { RecordStage = DeferredCallchainJoiner.Stage(tally, options, j => joiner = j) };
        var sink = new CollectingSink();
        using (var fs = File.OpenRead(Fixtures.Path("perf-defer", capture, "perf.data")))
            new PerfSampleSource(fs, capture, read, tally).RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult();
        return (sink.Samples, tally, joiner!.Stats);
    }

    // capture, samples, perf merged, perf left with a cookie, of those: joined by us from an earlier record, lost
    [Theory]
    [InlineData("recur-defer", 864, 862, 2, 2, 0)]
    [InlineData("bash-defer", 1071, 1071, 0, 0, 0)]
    public void EverySampleHasPerfsStackOrBetter(string capture, int samples, int perfMerged, int perfUnmerged, int joinedEarlier, int lost)
    {
        var (ours, tally, stats) = Join(capture);
        var perf = PerfScriptText.Parse(Fixtures.ReadText("perf-defer", capture, "script-F.txt.gz"));
        var noMerge = PerfScriptText.Parse(Fixtures.ReadText("perf-defer", capture, "script-F-nomerge.txt.gz"));
        var records = noMerge.Where(s => s.IsDeferredCallchain).ToList();
        // Each sample's cookie, from the no-merge view (its last line, "(cookie)").
        var cookies = noMerge.Where(s => !s.IsDeferredCallchain && s.Frames.Count > 0 && s.Frames[^1].IsCookie)
            .ToDictionary(s => (s.Tid, s.TimeMicros), s => s.Frames[^1].Address);
        Assert.Equal(0, tally.ErrorCount);
        Assert.Equal(samples, perf.Count);
        Assert.Equal(samples, ours.Count);

        var byKey = ours.GroupBy(o => (o.Tid, o.Time / 1000)).ToDictionary(g => g.Key, g => g.Single());
        int merged = 0, unmerged = 0, stitched = 0, lostSeen = 0, discarded = 0, userFrames = 0;
        foreach (var p in perf)
        {
            var o = byKey[(p.Tid, p.TimeMicros)];
            string at = $"{capture} {p.Comm} {p.Tid} {p.Seconds}.{p.Micros:D6}";
            Assert.Equal(p.Comm, o.Comm);
            Assert.Equal(p.Event, o.Event);
            Assert.DoesNotContain(o.Frames, f => f.Kind == FrameKind.DeferredCookie);
            if (p.Frames.Count == 0 && o.Frames.Count > 0) { discarded++; continue; } // perf drops a chain with a junk marker-range word
            // perf's merged view prints a cookie it could not merge as a user frame: "cf00000001 [unknown] ([unknown])".
            int cookieAt = cookies.TryGetValue((p.Tid, p.TimeMicros), out ulong cookie) && p.Frames.Count > 0
                && p.Frames[^1].Address == cookie && p.Frames[^1].Dso == "[unknown]" ? p.Frames.Count - 1 : -1;
            if (cookieAt < 0)
            {
                merged++;
                Assert.True(p.Frames.Count == o.Frames.Count, $"{at}: perf {p.Frames.Count} frames, ours {o.Frames.Count}");
                for (int k = 0; k < p.Frames.Count; k++) userFrames += SameFrame(p.Frames[k], o.Frames[k], $"{at} frame {k}") ? 1 : 0;
                continue;
            }
            // perf could not merge: the kernel part is perf's, the rest ours.
            unmerged++;
            for (int k = 0; k < cookieAt; k++) SameFrame(p.Frames[k], o.Frames[k], $"{at} frame {k}");
            var rest = o.Frames.Skip(cookieAt).ToList();
            if (rest is [{ Kind: FrameKind.UserLost }]) { lostSeen++; Assert.Equal(p.Frames[cookieAt].Address, rest[0].Address); continue; }
            // Stitched: the stack of the latest record of this (tid, cookie) before the sample.
            var rec = records.Last(r => r.Tid == p.Tid && r.Cookie == cookie && r.TimeMicros <= p.TimeMicros);
            Assert.Equal(rec.Frames.Select(f => f.Address), rest.Select(f => f.Address));
            Assert.All(rest, f => Assert.Equal(FrameKind.User, f.Kind));
            Assert.Equal(rec.Frames.Select(f => f.Dso), rest.Select(f => f.Mapping?.Path ?? "[unknown]"));
            stitched++;
        }
        Assert.Equal(discarded, tally.CountOf("perf.callchain.odd-context"));
        Assert.Equal(perfMerged, merged + discarded);
        Assert.Equal(perfUnmerged, unmerged);
        Assert.Equal(joinedEarlier, stitched);
        Assert.Equal(lost, lostSeen);
        Assert.True(userFrames > 1000, $"{userFrames} user frames compared");

        // The joiner's own account agrees.
        Assert.Equal(samples, stats.DeferredSamples);
        Assert.Equal(joinedEarlier, stats.JoinedEarlier);
        Assert.Equal(samples - joinedEarlier - lost, stats.JoinedLater);
        Assert.Equal(lost, stats.Lost);
        Assert.Equal(records.Count, stats.Records);
        Assert.Equal(0, stats.DuplicateRecords + stats.LateRecords + stats.RecordsWithoutTid + stats.CacheEvictions);
        Assert.Equal(lost, tally.Counts.Where(c => c.Code.StartsWith("perf.deferred.lost-", StringComparison.Ordinal)).Sum(c => c.Count));
    }

    /// <summary>Samples perf 7.2's merged view left with their cookie as a user frame ("cf00000001 [unknown] ([unknown])").</summary>
    internal static HashSet<(int Tid, ulong TimeMicros)> PerfUnmerged(string capture)
    {
        var cookies = PerfScriptText.Parse(Fixtures.ReadText("perf-defer", capture, "script-F-nomerge.txt.gz"))
            .Where(s => !s.IsDeferredCallchain && s.Frames.Count > 0 && s.Frames[^1].IsCookie)
            .ToDictionary(s => (s.Tid, s.TimeMicros), s => s.Frames[^1].Address);
        return PerfScriptText.Parse(Fixtures.ReadText("perf-defer", capture, "script-F.txt.gz"))
            .Where(p => p.Frames.Count > 0 && cookies.TryGetValue((p.Tid, p.TimeMicros), out ulong c) && p.Frames[^1].Address == c && p.Frames[^1].Dso == "[unknown]")
            .Select(p => (p.Tid, p.TimeMicros)).ToHashSet();
    }

    /// <summary>Address, kind and dso of one of our frames against perf's line. True for a user frame.</summary>
    internal static bool SameFrame(ScriptFrame p, CopiedFrame o, string at)
    {
        Assert.True(p.Address == o.Address, $"{at}: address {o.Address:x} vs perf {p.Address:x}");
        if (p.Dso == "[kernel.kallsyms]") { Assert.Equal(FrameKind.Kernel, o.Kind); return false; }
        Assert.Equal(FrameKind.User, o.Kind);
        Assert.True(p.Dso == (o.Mapping?.Path ?? "[unknown]"), $"{at}: dso {o.Mapping?.Path} vs perf {p.Dso}");
        return true;
    }
}
