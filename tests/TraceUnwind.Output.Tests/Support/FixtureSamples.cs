using System.Globalization;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Symbols;
using TraceUnwind.Testing;

namespace TraceUnwind.Output.Tests.Support;

/// <summary>Answers with the names perf printed for the same frames (tests only).</summary>
internal sealed class DictionarySymbolizer : ISymbolizer
{
    private readonly Dictionary<(Mapping?, ulong, FrameKind), SymbolHit> _hits = new();

    public int Count => _hits.Count;

    public void Add(in Frame frame, SymbolHit hit) => _hits[(frame.Mapping, frame.Address, frame.Kind)] = hit;

    public bool TryResolve(in Frame frame, out SymbolHit hit) => _hits.TryGetValue((frame.Mapping, frame.Address, frame.Kind), out hit);
}

/// <summary>A capture turned into Core samples plus a symbolizer that knows perf's names for them.</summary>
/// <summary>
/// A capture turned into Core samples plus a symbolizer that knows perf's names for them;
/// <see cref="PerfSamples"/> are perf's own parsed lines for the same samples (same order), and
/// <see cref="FileRelative"/> says whether perf printed resolved user addresses file-relative (perf 6.1).
/// </summary>
internal sealed record FixtureCapture(string Name, List<OwnedSample> Samples, DictionarySymbolizer Symbolizer,
    List<ScriptSample> PerfSamples, bool FileRelative);

/// <summary>
/// Turns perf's own <c>perf script</c> text of the fixtures into Core <see cref="Sample"/>s, as the perf
/// reader (written in parallel) will: a process model (Core's <see cref="ProcessTable"/>) built from the
/// MMAP/COMM/FORK/EXIT sideband lines in time order gives each user frame its <see cref="Mapping"/>;
/// perf's symbol names go into a <see cref="DictionarySymbolizer"/>. perf 6.1 prints resolved user
/// addresses file-relative (ip - start + pgoff), perf 7.2 the runtime ip; both become the runtime ip.
/// Periods come from the default <c>perf script</c> text of the same capture (same samples, same order).
/// </summary>
internal static class FixtureSamples
{
    public static readonly string[] DeferCaptures = ["recur-fp", "recur-defer", "bash-fp", "bash-defer"];
    public static readonly string[] PerfWorkloads = ["bash_loop", "dlopen", "python_script"];
    public static readonly string[] PerfKinds = ["fp", "tp"];

    /// <summary>Every capture by its ground-truth name (<c>perf-defer-recur-fp</c>, <c>perf-bash_loop-tp</c>, ...).</summary>
    public static IEnumerable<string> AllNames() =>
        DeferCaptures.Select(c => "perf-defer-" + c)
            .Concat(PerfWorkloads.SelectMany(w => PerfKinds.Select(k => $"perf-{w}-{k}")));

    private static readonly Dictionary<string, FixtureCapture> Cache = new();

    public static FixtureCapture Load(string name)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue(name, out var c)) return c;
            c = name.StartsWith("perf-defer-", StringComparison.Ordinal)
                ? LoadDefer(name["perf-defer-".Length..])
                : LoadPerf61(name);
            Cache[name] = c;
            return c;
        }
    }

    private static FixtureCapture LoadDefer(string capture)
    {
        var (_, _, inOrder) = PerfScriptText.Parse(Fixtures.ReadText("perf-defer", capture, "script-F-sideband.txt.gz"));
        var (withPeriod, _, _) = PerfScriptText.Parse(Fixtures.ReadText("perf-defer", capture, "script.txt.gz"));
        return Build("perf-defer-" + capture, inOrder, withPeriod, fileRelative: false);
    }

    private static FixtureCapture LoadPerf61(string name)
    {
        // perf-<workload>-<kind>
        string rest = name["perf-".Length..];
        int dash = rest.LastIndexOf('-');
        string workload = rest[..dash], kind = rest[(dash + 1)..];
        var (samples, _, _) = PerfScriptText.Parse(Fixtures.ReadText("perf", workload, kind + ".script_F.txt"));
        var (_, sideband, _) = PerfScriptText.Parse(Fixtures.ReadText("perf", workload, kind + ".mmap_task_events.txt"));
        var (withPeriod, _, _) = PerfScriptText.Parse(Fixtures.ReadText("perf", workload, kind + ".script.txt"));
        // Merge by time; at equal times the sideband goes first (an mmap precedes samples in it).
        var merged = new List<object>();
        int s = 0, b = 0;
        while (s < samples.Count || b < sideband.Count)
        {
            if (b < sideband.Count && (s == samples.Count || sideband[b].TimeNs <= samples[s].TimeNs)) merged.Add(sideband[b++]);
            else merged.Add(samples[s++]);
        }
        return Build(name, merged, withPeriod, fileRelative: true);
    }

    private static FixtureCapture Build(string name, List<object> inOrder, List<ScriptSample> withPeriod, bool fileRelative)
    {
        var table = new ProcessTable();
        var symbolizer = new DictionarySymbolizer();
        var result = new List<OwnedSample>();
        var perf = new List<ScriptSample>();
        var frames = new List<Frame>();
        foreach (var item in inOrder)
        {
            if (item is SidebandRecord r)
            {
                switch (r.Type)
                {
                    case "MMAP" when r.Pid >= 0:
                        table.Mmap(r.Pid, new Mapping(r.Start, r.Start + r.Size, r.PgOff, r.Path,
                            Mapping.ProtRead | (r.Prot.Contains('x') ? Mapping.ProtExec : 0)));
                        break;
                    // perf keeps a process's maps across exec until new MMAPs replace them: a sample taken inside
                    // execve after the COMM exec record still resolves its user ip in the old image.
                    case "EXEC" or "COMM": table.SetComm(r.Pid, r.Tid, r.Comm); break;
                    case "FORK": table.Fork(r.Pid, r.ParentPid, r.Tid, r.ParentTid); break;
                }
                continue;
            }
            var ss = (ScriptSample)item;
            int index = result.Count;
            if (index >= withPeriod.Count) throw new InvalidOperationException($"{name}: more samples than in the period file");
            var p = withPeriod[index];
            if (p.TimeNs != ss.TimeNs || p.Tid != ss.Tid)
                throw new InvalidOperationException($"{name}: sample {index} (line {ss.Line}) differs from the period file (line {p.Line})");
            perf.Add(ss);
            int pid = ss.Pid >= 0 ? ss.Pid : table.ProcessOfThread(ss.Tid);
            var space = table.FindProcess(pid)?.Maps;
            frames.Clear();
            foreach (var f in ss.Frames)
            {
                var frame = ToFrame(f, space, fileRelative, name, ss.Line);
                frames.Add(frame);
                int plus = f.Symbol.LastIndexOf("+0x", StringComparison.Ordinal);
                if (frame.Kind is not FrameKind.DeferredCookie && f.Symbol != "[unknown]" && plus > 0)
                    symbolizer.Add(frame, new SymbolHit(f.Symbol[..plus],
                        ulong.Parse(f.Symbol[(plus + 3)..], NumberStyles.HexNumber)));
            }
            result.Add(new OwnedSample
            {
                Index = index, Time = ss.TimeNs, Pid = pid, Tid = ss.Tid, Cpu = p.Cpu >= 0 ? p.Cpu : ss.Cpu,
                Period = p.Period ?? 1, Comm = ss.Comm, Event = ss.Event,
                Ip = frames.Count > 0 ? frames[0].Address : 0, Frames = frames.ToArray(),
            });
        }
        if (result.Count != withPeriod.Count) throw new InvalidOperationException($"{name}: {result.Count} samples, period file has {withPeriod.Count}");
        return new FixtureCapture(name, result, symbolizer, perf, fileRelative);
    }

    private static Frame ToFrame(ScriptFrame f, AddressSpace? space, bool fileRelative, string name, int line)
    {
        if (f.Symbol == "(cookie)") return new Frame(f.Address, FrameKind.DeferredCookie);
        if (f.Dso.StartsWith("[kernel.kallsyms]", StringComparison.Ordinal)) return new Frame(f.Address, FrameKind.Kernel);
        if (f.Dso == "[unknown]") return new Frame(f.Address, FrameKind.User);
        if (space is null) throw new InvalidOperationException($"{name} line {line}: no process for a frame in {f.Dso}");
        Mapping? m = null;
        ulong ip = f.Address;
        if (!fileRelative)
        {
            m = space.Find(ip);
            if (m is not null && m.Path != f.Dso) m = null;
        }
        else
        {
            foreach (var c in space.Mappings)
                if (c.Path == f.Dso && f.Address >= c.PgOff && f.Address - c.PgOff < c.Size)
                {
                    m = c;
                    ip = c.Start + (f.Address - c.PgOff);
                    break;
                }
        }
        if (m is null) throw new InvalidOperationException($"{name} line {line}: no mapping of {f.Dso} holds 0x{f.Address:x}");
        return new Frame(ip, FrameKind.User, m);
    }
}
