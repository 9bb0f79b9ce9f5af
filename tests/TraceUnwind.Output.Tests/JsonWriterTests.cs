using System.Text;
using System.Text.Json;
using TraceUnwind.Model;
using TraceUnwind.Output.Tests.Support;

namespace TraceUnwind.Output.Tests;

/// <summary>
/// speedscope and Chromium JSON, parsed back with System.Text.Json: structure as the formats define it,
/// and stacks and weights equal to the input (per stack, the same totals as the folded output).
/// </summary>
public class JsonWriterTests
{
    public static TheoryData<string> Captures() => new(FixtureSamples.AllNames());

    /// <summary>Folded totals keyed by "thread-key;frame;...;frame" (outermost first), from FoldedWriter with --tid.</summary>
    private static Dictionary<string, long> FoldedTotals(FixtureCapture c, SampleWeight weight)
    {
        var text = FoldedWriterGroundTruthTests.Fold(c, new FoldedOptions { IncludeTid = true, TidyNames = false, Weight = weight });
        var totals = new Dictionary<string, long>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int sp = line.LastIndexOf(' ');
            string stack = line[..sp];
            // comm-PID/TID -> PID/TID, so the key does not depend on how comm is spelled.
            int semi = stack.IndexOf(';');
            string head = semi < 0 ? stack : stack[..semi];
            string key = head[(head.LastIndexOf('-') + 1)..] + (semi < 0 ? "" : stack[semi..]);
            totals[key] = totals.GetValueOrDefault(key) + long.Parse(line[(sp + 1)..]);
        }
        return totals;
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void SpeedscopeStacksAndWeightsEqualFoldedTotals(string capture)
    {
        var c = FixtureSamples.Load(capture);
        foreach (var weight in new[] { SampleWeight.Samples, SampleWeight.Period })
        {
            var ms = new MemoryStream();
            var w = new SpeedscopeWriter(ms, c.Symbolizer, new SpeedscopeOptions { Weight = weight });
            OwnedSample.SendAll(c.Samples, w);
            using var doc = JsonDocument.Parse(ms.ToArray());
            var root = doc.RootElement;
            Assert.Equal("https://www.speedscope.app/file-format-schema.json", root.GetProperty("$schema").GetString());
            var frames = root.GetProperty("shared").GetProperty("frames").EnumerateArray()
                .Select(f => (Name: f.GetProperty("name").GetString()!, File: f.GetProperty("file").GetString()!)).ToList();
            Assert.Equal(frames.Count, frames.Distinct().Count());
            var profiles = root.GetProperty("profiles").EnumerateArray().ToList();
            int active = root.GetProperty("activeProfileIndex").GetInt32();
            Assert.InRange(active, 0, profiles.Count - 1);
            var totals = new Dictionary<string, long>();
            long grand = 0;
            foreach (var p in profiles)
            {
                Assert.Equal("sampled", p.GetProperty("type").GetString());
                string name = p.GetProperty("name").GetString()!;
                string thread = name[(name.LastIndexOf(' ') + 1)..]; // "comm pid/tid"
                var samples = p.GetProperty("samples").EnumerateArray().ToList();
                var weights = p.GetProperty("weights").EnumerateArray().Select(x => x.GetInt64()).ToList();
                Assert.Equal(samples.Count, weights.Count);
                Assert.Equal(0, p.GetProperty("startValue").GetInt64());
                Assert.Equal(weights.Sum(), p.GetProperty("endValue").GetInt64());
                Assert.True(p.GetProperty("endValue").GetInt64() <= profiles[active].GetProperty("endValue").GetInt64());
                for (int i = 0; i < samples.Count; i++)
                {
                    var names = samples[i].EnumerateArray().Select(x => frames[x.GetInt32()].Name.Replace(';', ':'));
                    string key = string.Join(";", names.Prepend(thread));
                    totals[key] = totals.GetValueOrDefault(key) + weights[i];
                    grand += weights[i];
                }
            }
            var expected = FoldedTotals(c, weight);
            Assert.Equal(expected.OrderBy(x => x.Key, StringComparer.Ordinal), totals.OrderBy(x => x.Key, StringComparer.Ordinal));
            Assert.Equal(weight == SampleWeight.Samples ? c.Samples.Count : c.Samples.Sum(s => (long)s.Period), grand);
        }
    }

    [Fact]
    public void SpeedscopeTimeOrderKeepsTheSequence()
    {
        var c = FixtureSamples.Load("perf-defer-recur-defer");
        var ms = new MemoryStream();
        var w = new SpeedscopeWriter(ms, c.Symbolizer, new SpeedscopeOptions { PreserveTimeOrder = true, GroupBy = SpeedscopeGrouping.Process });
        OwnedSample.SendAll(c.Samples, w);
        using var doc = JsonDocument.Parse(ms.ToArray());
        var frames = doc.RootElement.GetProperty("shared").GetProperty("frames").EnumerateArray().Select(f => f.GetProperty("name").GetString()).ToList();
        var namer = new FrameNamer(c.Symbolizer);
        // Expand each profile's (stack, weight) runs back into samples and compare with the input, per process, in order.
        foreach (var p in doc.RootElement.GetProperty("profiles").EnumerateArray())
        {
            string name = p.GetProperty("name").GetString()!;
            int pid = int.Parse(name[(name.LastIndexOf(' ') + 1)..]);
            var input = c.Samples.Where(s => s.Pid == pid)
                .Select(s => string.Join(";", s.Frames.Reverse().Where(f => f.Kind != FrameKind.DeferredCookie).Select(f => namer.GetName(f)))).ToList();
            var output = new List<string>();
            var weights = p.GetProperty("weights").EnumerateArray().Select(x => x.GetInt32()).ToList();
            int i = 0;
            foreach (var stack in p.GetProperty("samples").EnumerateArray())
            {
                string text = string.Join(";", stack.EnumerateArray().Select(x => frames[x.GetInt32()]));
                for (int k = 0; k < weights[i]; k++) output.Add(text);
                i++;
            }
            Assert.Equal(input, output);
        }
    }

    /// <summary>
    /// Chromium: B/E events nest per thread; replaying them, the open stack at each input sample's time is
    /// that sample's stack (so counting samples by it gives the folded totals); thread names come from M events.
    /// </summary>
    [Theory]
    [MemberData(nameof(Captures))]
    public void ChromiumSlicesReproduceEverySample(string capture)
    {
        var c = FixtureSamples.Load(capture);
        var ms = new MemoryStream();
        var w = new ChromiumTraceWriter(ms, c.Symbolizer);
        OwnedSample.SendAll(c.Samples, w);
        using var doc = JsonDocument.Parse(ms.ToArray());
        var root = doc.RootElement;
        Assert.Equal("ns", root.GetProperty("displayTimeUnit").GetString());
        Assert.Equal(c.Samples.Count, root.GetProperty("otherData").GetProperty("samples").GetInt64());
        // Per thread: ordered events (ts, B name | E).
        var perThread = new Dictionary<int, List<(decimal Ts, string? Name)>>();
        var threadNames = new Dictionary<int, string>();
        foreach (var e in root.GetProperty("traceEvents").EnumerateArray())
        {
            string ph = e.GetProperty("ph").GetString()!;
            int tid = e.GetProperty("tid").GetInt32();
            if (ph == "M")
            {
                if (e.GetProperty("name").GetString() == "thread_name")
                    threadNames[tid] = e.GetProperty("args").GetProperty("name").GetString()!;
                continue;
            }
            decimal ts = e.GetProperty("ts").GetDecimal();
            if (!perThread.TryGetValue(tid, out var list)) perThread[tid] = list = [];
            Assert.True(list.Count == 0 || list[^1].Ts <= ts, "timestamps go forward on a thread");
            list.Add((ts, ph == "B" ? e.GetProperty("name").GetString() : ph == "E" ? null : throw new Xunit.Sdk.XunitException("phase " + ph)));
        }
        var namer = new FrameNamer(c.Symbolizer);
        var totals = new Dictionary<string, long>();
        foreach (var group in c.Samples.GroupBy(s => s.Tid))
        {
            var events = perThread.GetValueOrDefault(group.Key) ?? [];
            var open = new List<string>();
            int next = 0;
            foreach (var s in group)
            {
                decimal ts = s.Time / 1000m;
                while (next < events.Count && events[next].Ts <= ts)
                {
                    if (events[next].Name is { } n) open.Add(n);
                    else open.RemoveAt(open.Count - 1);
                    next++;
                }
                var expected = s.Frames.Reverse().Where(f => f.Kind != FrameKind.DeferredCookie).Select(f => namer.GetName(f)).ToList();
                Assert.Equal(expected, open);
                string key = string.Join(";", open.Select(n => n.Replace(';', ':')).Prepend($"{s.Pid}/{s.Tid}"));
                totals[key] = totals.GetValueOrDefault(key) + 1;
            }
            // thread_name metadata: the thread's last comm (a new M event follows each comm change).
            Assert.Equal(group.Last().Comm, threadNames[group.Key]);
            // Everything is closed at the end.
            while (next < events.Count)
            {
                Assert.Null(events[next].Name);
                open.RemoveAt(open.Count - 1);
                next++;
            }
            Assert.Empty(open);
        }
        var folded = FoldedTotals(c, SampleWeight.Samples);
        Assert.Equal(folded.OrderBy(x => x.Key, StringComparer.Ordinal), totals.OrderBy(x => x.Key, StringComparer.Ordinal));
    }

    [Fact]
    public void ChromiumFlushGivesAPrefixAndGapsCloseSlices()
    {
        var m = new Processes.Mapping(0x1000, 0x2000, 0, "/bin/x");
        Frame[] stack = [new Frame(0x1010, FrameKind.User, m), new Frame(0x1500, FrameKind.User, m)];
        var ms = new MemoryStream();
        var w = new ChromiumTraceWriter(ms, null, new ChromiumTraceOptions { MaxSampleDurationNs = 1_000_000 });
        new OwnedSample { Time = 1_000_000, Pid = 5, Tid = 5, Comm = "x", Event = "cpu-clock", Period = 1, Frames = stack }.SendTo(w);
        new OwnedSample { Time = 1_500_000, Pid = 5, Tid = 5, Comm = "x", Event = "cpu-clock", Period = 1, Frames = stack }.SendTo(w);
        // 10 ms later: the stack was closed at 1.5 ms + 1 ms and opens again.
        new OwnedSample { Time = 11_500_000, Pid = 5, Tid = 5, Comm = "x", Event = "cpu-clock", Period = 1, Frames = stack }.SendTo(w);
        w.Flush();
        string prefix = Encoding.UTF8.GetString(ms.ToArray());
        Assert.StartsWith("{\"traceEvents\":[", prefix);
        w.Complete();
        using var doc = JsonDocument.Parse(ms.ToArray());
        var ev = doc.RootElement.GetProperty("traceEvents").EnumerateArray()
            .Where(e => e.GetProperty("ph").GetString() != "M")
            .Select(e => (e.GetProperty("ph").GetString(), e.GetProperty("ts").GetDecimal())).ToList();
        Assert.Equal(
        [
            ("B", 1000m), ("B", 1000m),
            ("E", 2500m), ("E", 2500m),
            ("B", 11500m), ("B", 11500m),
            ("E", 12500m), ("E", 12500m), // last slice: capped at the maximum (the 10 ms gap exceeds it)
        ], ev);
        Assert.Equal("/bin/x[+0x10]", doc.RootElement.GetProperty("traceEvents").EnumerateArray()
            .Where(e => e.GetProperty("ph").GetString() == "B").Skip(1).First().GetProperty("name").GetString());
    }
}
