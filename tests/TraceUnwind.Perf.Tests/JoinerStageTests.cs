using TraceUnwind.Model;
using TraceUnwind.Testing;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// The stage slot between time ordering and sample building (<see cref="PerfReadOptions.RecordStage"/>)
/// carries a deferred-callchain joiner. This test plugs in a plain re-statement of perf 7.2's own
/// algorithm (session.c <c>evlist__deliver_deferred_callchain</c>: hold samples FIFO; on a deferred
/// record, every held sample of that tid goes out, merged when the cookie matches; the rest at the
/// end) — not the project's joiner (<c>DeferredCallchainJoiner</c>, <c>DeferredJoinerRealTests</c>) — and requires perf's merged
/// <c>perf script</c> output, sample for sample and frame for frame: the hook, the held-copy re-parse
/// (<see cref="PerfSampleParser"/>) and the builder's merged form together reproduce perf.
/// </summary>
public sealed class JoinerStageTests
{
    private sealed class PerfStyleJoiner(PerfSession session, IPerfRecordHandler next) : IPerfRecordHandler
    {
        private readonly PerfSampleParser _parser = new(session);
        private readonly List<(int Tid, byte[] Bytes, long Offset)> _held = new();

        public void OnSample(in PerfSample s)
        {
            if (s.Event.Attr.DeferCallchain && s.HasDeferredUserCallchain) _held.Add((s.Tid, s.Record.Bytes.ToArray(), s.Record.FileOffset));
            else next.OnSample(in s);
        }

        public void OnDeferredCallchain(in PerfDeferredCallchain d)
        {
            int tid = d.Record.SampleId.Tid;
            for (int i = 0; i < _held.Count;)
            {
                var (t, bytes, off) = _held[i];
                if (t != tid) { i++; continue; }
                _held.RemoveAt(i);
                Assert.True(_parser.TryParseSample(bytes, off, out var held, out string? err), err);
                if (held.DeferredCookie == d.Cookie)
                {
                    // sample__merge_deferred_callchain: the chain without its cookie, then the deferred ips.
                    var merged = new ulong[held.Callchain.Length - 1 + d.Ips.Length];
                    held.Callchain[..^1].CopyTo(merged);
                    d.Ips.CopyTo(merged.AsSpan(held.Callchain.Length - 1));
                    held.Callchain = merged;
                    held.DeferredResolution = PerfDeferredResolution.Joined;
                }
                else
                {
                    // perf clears sample.deferred_callchain and delivers the chain as it is: the marker then
                    // reads as PERF_CONTEXT_USER and the cookie prints as a user address ("cf00000001 [unknown]").
                    held.DeferredResolution = PerfDeferredResolution.Joined;
                }
                next.OnSample(in held);
            }
        }

        public void OnEnd()
        {
            foreach (var (_, bytes, off) in _held)
            {
                Assert.True(_parser.TryParseSample(bytes, off, out var held, out _));
                next.OnSample(in held);
            }
            _held.Clear();
            next.OnEnd();
        }

        public void OnMmap(in PerfMmap m) => next.OnMmap(m);
        public void OnComm(in PerfComm c) => next.OnComm(c);
        public void OnFork(in PerfTaskEvent f) => next.OnFork(f);
        public void OnExit(in PerfTaskEvent e) => next.OnExit(e);
        public void OnOtherRecord(in PerfRecord r) => next.OnOtherRecord(r);
        public void OnIdle() => next.OnIdle();
    }

    [Theory]
    [InlineData("recur-defer")]
    [InlineData("bash-defer")]
    public void PerfsOwnMergeThroughTheStageSlotMatchesPerfScript(string capture)
    {
        var options = new PerfReadOptions { RecordStage = (session, next) => new PerfStyleJoiner(session, next) };
        var (ours, tally, _) = Run.File(Fixtures.Path("perf-defer", capture, "perf.data"), options);
        var perf = PerfScriptText.Parse(Fixtures.ReadText("perf-defer", capture, "script-F.txt.gz"));
        Assert.Equal(0, tally.ErrorCount);
        Assert.Equal(perf.Count, ours.Count);
        int merged = 0, unmerged = 0, user = 0, kernel = 0, discarded = 0;
        for (int i = 0; i < perf.Count; i++)
        {
            var p = perf[i];
            var o = ours[i];
            string at = $"{capture} #{i} ({p.Comm} {p.Tid} {p.Seconds}.{p.Micros:D6})";
            Assert.True((p.Tid, p.TimeMicros, p.Comm, p.Event) == (o.Tid, o.Time / 1000, o.Comm, o.Event), $"{at}: {o.Tid} {o.Time} {o.Comm} {o.Event}");
            if (p.Frames.Count == 0 && o.Frames.Count > 0) { discarded++; continue; } // perf drops a chain with a junk marker-range word
            Assert.True(p.Frames.Count == o.Frames.Count, $"{at}: perf {p.Frames.Count} frames, ours {o.Frames.Count}");
            if (o.Frames.Any(f => f.Kind == FrameKind.DeferredCookie)) unmerged++; else merged++;
            for (int k = 0; k < p.Frames.Count; k++)
            {
                var pf = p.Frames[k];
                var of = o.Frames[k];
                Assert.Equal(pf.Address, of.Address);
                if (pf.IsCookie) Assert.Equal(FrameKind.DeferredCookie, of.Kind);
                else if (pf.Dso == "[kernel.kallsyms]") { Assert.Equal(FrameKind.Kernel, of.Kind); kernel++; }
                else
                {
                    Assert.Equal(FrameKind.User, of.Kind);
                    Assert.True(pf.Dso == (of.Mapping?.Path ?? "[unknown]"), $"{at} frame {k}: {of.Mapping?.Path} vs perf {pf.Dso}");
                    user++;
                }
            }
        }
        Assert.Equal(discarded, tally.CountOf("perf.callchain.odd-context"));
        Assert.True(merged > 700 && user > 1000 && kernel > 1000, $"{merged} merged, {unmerged} unmerged, {user} user, {kernel} kernel frames");
    }
}
