using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Testing;
using Xunit.Abstractions;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// Every sample of every real capture against <c>perf script -F comm,pid,tid,time,event,ip,sym,dso,symoff</c>
/// made by the perf that recorded it: count, time (perf prints µs), pid/tid, comm, event, and frame by frame
/// the kernel addresses and the user frames' dso and address. perf 6.1 prints a resolved user frame
/// file-relative (ip - map start + pgoff, our <see cref="Frame.FileOffset"/>) and an unresolved one as the
/// raw ip; perf 7.2 prints raw ips everywhere.
/// </summary>
public sealed class GroundTruthTests(ITestOutputHelper output)
{
    public enum Addr { FileRelative, Absolute }

    public static TheoryData<string, string, Addr, bool> Captures()
    {
        var d = new TheoryData<string, string, Addr, bool>();
        foreach (var w in new[] { "bash_loop", "dlopen", "python_script" })
        {
            d.Add($"perf/{w}/fp.data", $"perf/{w}/fp.script_F.txt", Addr.FileRelative, false);
            d.Add($"perf/{w}/tp.data", $"perf/{w}/tp.script_F.txt", Addr.FileRelative, false);
            d.Add($"perf/{w}/dwarf.data", $"perf/{w}/dwarf.script_F.txt", Addr.FileRelative, true);
        }
        // Made on this machine with perf 6.1 (fixtures/perf-local/capture.sh): pipe mode and -z.
        d.Add("perf-local/pipe.data", "perf-local/pipe.script_F.txt.gz", Addr.FileRelative, false);
        d.Add("perf-local/zstd.data", "perf-local/zstd.script_F.txt.gz", Addr.FileRelative, false);
        d.Add("perf-local/pipe-tp.data", "perf-local/pipe-tp.script_F.txt.gz", Addr.FileRelative, false);
        d.Add("perf-defer/recur-fp/perf.data", "perf-defer/recur-fp/script-F.txt.gz", Addr.Absolute, false);
        d.Add("perf-defer/bash-fp/perf.data", "perf-defer/bash-fp/script-F.txt.gz", Addr.Absolute, false);
        return d;
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void SamplesMatchPerfScript(string data, string script, Addr addr, bool dwarf)
    {
        var (ours, tally, session) = Run.File(Fixtures.Path(data.Split('/')));
        var perf = PerfScriptText.Parse(Fixtures.ReadText(script.Split('/')));
        output.WriteLine($"{data}: {ours.Count} samples, perf {perf.Count}; events {string.Join(", ", session.Events)}");
        var sw = new StringWriter();
        tally.WriteSummary(sw);
        output.WriteLine(sw.ToString());
        Assert.Equal(0, tally.ErrorCount);
        Assert.Equal(perf.Count, ours.Count);
        int userCompared = 0, kernelCompared = 0, discarded = 0;
        for (int i = 0; i < perf.Count; i++)
        {
            if (perf[i].Frames.Count == 0 && ours[i].Frames.Count > 0)
            {
                // perf (add_callchain_ip) throws away a whole chain that holds an invalid context
                // marker ("callchain is corrupted. Discard all."); we keep its frames and count it.
                discarded++;
                continue;
            }
            CompareSample(perf[i], ours[i], addr, dwarf, ref userCompared, ref kernelCompared, $"{data} sample {i}");
        }
        output.WriteLine($"compared {kernelCompared} kernel and {userCompared} user frames; {discarded} chains perf discarded");
        Assert.Equal(discarded, tally.CountOf("perf.callchain.odd-context"));
        Assert.True(kernelCompared + userCompared >= perf.Count - discarded, "every sample should have compared at least one frame");
    }

    internal static void CompareSample(ScriptSample p, CopiedSample o, Addr addr, bool dwarf, ref int userCompared, ref int kernelCompared, string where)
    {
        string at = $"{where} ({p.Comm} {p.Tid} {p.Seconds}.{p.Micros:D6})";
        Assert.True(p.Pid == o.Pid && p.Tid == o.Tid, $"{at}: pid/tid {o.Pid}/{o.Tid}");
        Assert.True(p.TimeMicros == o.Time / 1000, $"{at}: time {o.Time}");
        Assert.True(p.Comm == o.Comm, $"{at}: comm '{o.Comm}'");
        Assert.True(p.Event == o.Event, $"{at}: event '{o.Event}'");
        var pf = PerfScriptText.CollapseInlines(p.Frames);
        var of = o.Frames;
        if (dwarf)
        {
            // perf 6.1 unwound the user stack with libunwind; without an unwinder we produce the kernel
            // frames and, for a sample taken in user mode, the sampled ip: compare exactly those.
            int k = of.TakeWhile(f => f.Kind == FrameKind.Kernel).Count();
            Assert.True(of.Count == k || of.Count == k + 1 && k == 0, $"{at}: dwarf sample without unwinder has {of.Count} frames");
            Assert.True(pf.Count >= of.Count, $"{at}: perf has {pf.Count} frames, we {of.Count}");
            for (int i = 0; i < of.Count; i++) CompareFrame(pf[i], of[i], addr, ref userCompared, ref kernelCompared, $"{at} frame {i}");
            if (of.Count == k && pf.Count > k) Assert.NotEqual("[kernel.kallsyms]", pf[k].Dso);
            return;
        }
        // perf script stops at --max-stack (127 entries).
        int n = Math.Min(of.Count, 127);
        Assert.True(pf.Count == n, $"{at}: perf has {pf.Count} frames, we {of.Count}:\n  perf {string.Join(" ", pf.Select(f => f.Address.ToString("x")))}\n  ours {string.Join(" ", of.Select(f => f.Address.ToString("x") + "/" + f.Kind))}");
        for (int i = 0; i < n; i++) CompareFrame(pf[i], of[i], addr, ref userCompared, ref kernelCompared, $"{at} frame {i}");
    }

    private static void CompareFrame(ScriptFrame p, CopiedFrame o, Addr addr, ref int userCompared, ref int kernelCompared, string at)
    {
        if (o.Kind == FrameKind.Kernel)
        {
            Assert.True(p.Address == o.Address, $"{at}: kernel {o.Address:x} vs perf {p.Address:x}");
            Assert.True(p.Dso.StartsWith('[') || p.Dso.StartsWith('/'), $"{at}: kernel frame with perf dso {p.Dso}");
            kernelCompared++;
            return;
        }
        Assert.Equal(FrameKind.User, o.Kind);
        userCompared++;
        if (p.Dso == "[unknown]")
        {
            Assert.True(o.Mapping is null || !o.Mapping.IsFileBacked, $"{at}: perf has no dso for {p.Address:x}, we have {o.Mapping}");
            Assert.True(p.Address == o.Address, $"{at}: unknown-dso address {o.Address:x} vs perf {p.Address:x}");
            return;
        }
        if (p.IsInlined)
        {
            // A run of inline lines only: no dso to compare; the address is still the entry's.
        }
        else
        {
            Assert.True(o.Mapping is not null, $"{at}: we have no mapping for {o.Address:x}, perf says {p.Dso}");
            Assert.True(p.Dso == o.Mapping!.Path, $"{at}: dso {o.Mapping.Path} vs perf {p.Dso}");
        }
        ulong expect = addr == Addr.Absolute || o.Mapping is null || o.Mapping.Kind == MappingKind.Anonymous
            ? o.Address : o.Mapping.FileOffset(o.Address);
        Assert.True(p.Address == expect, $"{at}: address {expect:x} (ip {o.Address:x}) vs perf {p.Address:x}");
    }
}
