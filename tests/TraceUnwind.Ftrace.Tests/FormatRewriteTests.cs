using System.Text;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Symbols;
using TraceUnwind.Testing;

namespace TraceUnwind.Ftrace.Tests;

/// <summary>
/// Whole-file rewrites of <c>fixtures/ftrace/formats/</c>: the same buffer rendered raw and with
/// sym-userobj (and sym-addr) by the kernel while the process was alive, so the rewrite of the raw
/// rendering with the process's maps must give the kernel's rendering byte for byte.
/// </summary>
public class FormatRewriteTests
{
    private static MapsSnapshots Snapshot(string mapsFile, int pid)
    {
        var text = $"==> /proc/{pid}/maps <==\n" + Fixtures.ReadText("ftrace", "formats", mapsFile);
        var snaps = new MapsSnapshots();
        MapsSnapshotReader.Read(Encoding.UTF8.GetBytes(text), mapsFile, snaps);
        return snaps;
    }

    [Theory]
    // Hand-made frames: an address 0x800 below /etc/hostname (wrapped offset), one above every mapping (raw).
    [InlineData("72_fake_frames_raw.txt", "72_fake_frames.maps", 17388, false, "72_fake_frames_sym-userobj.txt")]
    [InlineData("72_fake_frames_raw.txt", "72_fake_frames.maps", 17388, true, "72_fake_frames_sym-userobj_sym-addr.txt")]
    // The helper's buffer: without the tgid column, and with it.
    [InlineData("02_no-record-tgid.txt", "helper.maps", 17008, false, "04_sym-userobj.txt")]
    [InlineData("02_no-record-tgid.txt", "helper.maps", 17008, true, "05_sym-userobj_sym-addr.txt")]
    [InlineData("01_default.txt", "helper.maps", 17008, false, "17_sym-userobj_record-tgid.txt")]
    public void RawRenderingBecomesTheKernelsSymUserobjRendering(string raw, string maps, int pid, bool keepAddress, string expected)
    {
        var output = FtraceTestData.Rewrite(Fixtures.ReadBytes("ftrace", "formats", raw),
            new RewriteOptions { Maps = Snapshot(maps, pid), KeepAddress = keepAddress });
        Assert.Equal(Fixtures.ReadText("ftrace", "formats", expected), Encoding.UTF8.GetString(output));
    }

    [Fact]
    public void LinesTheKernelAlreadyResolvedPassThrough()
    {
        // sym-userobj without address cannot be looked up again; with the live (read-time) view
        // even sym-addr lines are left as the kernel printed them.
        foreach (var f in new[] { "04_sym-userobj.txt", "05_sym-userobj_sym-addr.txt", "06_sym-userobj_sym-addr_sym-offset.txt",
                     "40_stacktrace_option_sym-userobj.txt", "41_stacktrace_option_sym-offset.txt", "42_stacktrace_option_sym-offset_sym-addr.txt",
                     "70_odd_paths_sym-userobj.txt", "71_odd_paths_sym-userobj_trace_pipe.txt", "09_sym-userobj_latency-format.txt",
                     "10_sym-userobj_latency-format_verbose.txt", "08_sym-userobj_no-context-info.txt" })
        {
            var input = Fixtures.ReadBytes("ftrace", "formats", f);
            var live = new LiveProcMaps(Path.Combine(Path.GetTempPath(), "tu-no-proc-" + Guid.NewGuid()));
            Assert.Equal(input, FtraceTestData.Rewrite(input, new RewriteOptions { Maps = live }));
            Assert.Equal(input, FtraceTestData.Rewrite(input, new RewriteOptions { Maps = Snapshot("helper.maps", 17008) }));
        }
    }

    [Fact]
    public void TimeAwareMapsCorrectTheKernelsSymAddrLines()
    {
        // The kernel resolved this frame at read time in the wrong image (the sym-addr form keeps the
        // address, so it can be looked up again): the snapshot of the event's time wins.
        const string line = "    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\n => /usr/bin/true[+0xfffffff73d1e4282] <0000562c3a152202>\n";
        var output = FtraceTestData.Rewrite(Encoding.UTF8.GetBytes(line), new RewriteOptions { Maps = Snapshot("72_fake_frames.maps", 17388) });
        Assert.Equal("    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\n => /tmp/tu/bin/probe_helper[+0x202] <0000562c3a152202>\n",
            Encoding.UTF8.GetString(output));
    }

    [Fact]
    public void KernelStackBlocksAreUntouched()
    {
        // A kernel block's frames are never user frames, even when they look raw.
        const string text = "           bash-1       [000] .....    10.000000: <stack trace>\n =>  <0000562c3a152202>\n => do_syscall_64+0x1fa/0x280\n";
        var output = FtraceTestData.Rewrite(Encoding.UTF8.GetBytes(text), new RewriteOptions { Maps = Snapshot("72_fake_frames.maps", 1) });
        Assert.Equal(text, Encoding.UTF8.GetString(output));
    }

    /// <summary>
    /// trace-cmd report of a buffer also rendered by the kernel with sym-userobj
    /// (<c>kernel_trace_sym-userobj.txt</c>, while part of the processes were alive): the
    /// mappings the kernel used are recovered from its resolved frames paired with the raw
    /// rendering (start = address - offset), and the report's <c>0x...</c> frames rewritten with
    /// them must read as the kernel's, in trace-cmd's layout, padding untouched.
    /// </summary>
    [Theory]
    [InlineData("report_default.txt")]
    [InlineData("report_-t.txt")]
    [InlineData("report_-l.txt")]
    public void TraceCmdReportFramesReadAsTheKernelsSymUserobj(string report)
    {
        var raw = FtraceTestData.Lines(Fixtures.ReadText("trace-cmd", "kernel_trace_nosym.txt"));
        var sym = FtraceTestData.Lines(Fixtures.ReadText("trace-cmd", "kernel_trace_sym-userobj.txt"));
        Assert.Equal(raw.Count, sym.Count);
        // Per user stack (in order): the kernel's frames, raw address and resolved text.
        var kernelStacks = new List<List<(ulong Addr, string? Resolved)>>();
        var byProcess = new Dictionary<int, Dictionary<(string Path, ulong Start), ulong>>();
        var threads = new Dictionary<int, int>();
        List<(ulong, string?)>? cur = null;
        int tgid = -1;
        for (int i = 0; i < raw.Count; i++)
        {
            var rb = Encoding.UTF8.GetBytes(raw[i]);
            if (FrameLineParser.TryParse(rb, out var rf))
            {
                if (cur is null) continue;
                Assert.True(FrameLineParser.TryParse(Encoding.UTF8.GetBytes(sym[i]), out var sf));
                string? resolved = sf.Form == FrameForm.UserObj ? sym[i][4..] : null;
                cur.Add((rf.Address, resolved));
                if (resolved is not null && tgid > 0)
                {
                    if (!byProcess.TryGetValue(tgid, out var maps)) byProcess[tgid] = maps = new();
                    var key = (Encoding.UTF8.GetString(sf.Path), rf.Address - sf.Offset);
                    maps[key] = Math.Max(maps.GetValueOrDefault(key), rf.Address + 1);
                }
                continue;
            }
            cur = null;
            if (EventLineParser.TryParse(rb, out var ev) && ev.IsUserStackHeader)
            {
                cur = new();
                kernelStacks.Add(cur);
                tgid = ev.Tgid;
                if (ev.Tgid > 0) threads[ev.Pid] = ev.Tgid;
            }
        }
        var snaps = new MapsSnapshots();
        foreach (var (p, maps) in byProcess)
            snaps.Add(p, p, null, maps.Select(m => new Mapping(m.Key.Start, m.Value, 0, m.Key.Path)));
        foreach (var (tid, p) in threads)
            if (tid != p && byProcess.ContainsKey(p)) snaps.Add(p, tid, null, byProcess[p].Select(m => new Mapping(m.Key.Start, m.Value, 0, m.Key.Path)));

        var input = Fixtures.ReadBytes("trace-cmd", report);
        var output = FtraceTestData.Rewrite(input, new RewriteOptions { Maps = snaps });
        var inLines = FtraceTestData.Lines(Encoding.UTF8.GetString(input));
        var outLines = FtraceTestData.Lines(Encoding.UTF8.GetString(output));
        Assert.Equal(inLines.Count, outLines.Count);
        int stack = -1, slot = 0, compared = 0;
        for (int i = 0; i < inLines.Count; i++)
        {
            string a = inLines[i], b = outLines[i];
            int tab = a.IndexOf("\t=> ", StringComparison.Ordinal);
            if (tab < 0) { Assert.Equal(a, b); continue; }
            if (tab > 0) { stack++; slot = 0; }
            Assert.Equal(a[..(tab + 4)], b[..Math.Min(b.Length, tab + 4)]);
            string frame = a[(tab + 4)..], ours = b[(tab + 4)..];
            var kernel = kernelStacks[stack];
            if (frame == "0x0")
            {
                Assert.Equal(a, b);
                Assert.True(slot >= kernel.Count);
            }
            else
            {
                Assert.Equal(kernel[slot].Addr, Convert.ToUInt64(frame, 16));
                if (kernel[slot].Resolved is { } k)
                {
                    Assert.Equal(k, ours);
                    compared++;
                }
            }
            slot++;
        }
        Assert.Equal(kernelStacks.Count - 1, stack);
        Assert.Equal(38, compared);
    }

    /// <summary>A symbolizer for tests: names file offsets by a table, as an ELF .symtab would.</summary>
    private sealed class TableSymbolizer(string path, params (ulong Start, ulong Size, string Name)[] symbols) : ISymbolizer
    {
        public readonly List<Frame> Asked = new();

        public bool TryResolve(in Frame frame, out SymbolHit hit)
        {
            Asked.Add(frame);
            hit = default;
            if (frame.Mapping is not { } m || m.Path != path) return false;
            ulong fileOffset = m.FileOffset(frame.LookupAddress);
            foreach (var (start, size, name) in symbols)
                if (fileOffset >= start && fileOffset < start + size)
                {
                    hit = new SymbolHit(name, m.FileOffset(frame.Address) - start);
                    return true;
                }
            return false;
        }
    }

    [Fact]
    public void SymbolsAreAppendedToRewrittenFrames()
    {
        // probe_helper's r-xp segment maps file offset 0x1000 at 0x562c3a152000.
        var sym = new TableSymbolizer("/tmp/tu/bin/probe_helper", (0x11f0, 0x50, "level3"), (0x1240, 0x10, "level2"), (0x1490, 0x20, "main"));
        const string text = "    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\n =>  <0000562c3a152202>\n =>  <0000562c3a15224b>\n =>  <0000562c3a15249c>\n =>  <00007fa7711be24a>\n";
        var output = Encoding.UTF8.GetString(FtraceTestData.Rewrite(Encoding.UTF8.GetBytes(text),
            new RewriteOptions { Maps = Snapshot("72_fake_frames.maps", 17388), Symbolizer = sym }));
        Assert.Equal(
            "    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\n" +
            " => /tmp/tu/bin/probe_helper[+0x202] level3+0x12\n" +
            " => /tmp/tu/bin/probe_helper[+0x24b] level2+0xb\n" +
            " => /tmp/tu/bin/probe_helper[+0x49c] main+0xc\n" +
            " => /usr/lib/x86_64-linux-gnu/libc.so.6[+0x124a]\n", output);
        // Frame 0 is the exact ip; callers are return addresses (looked up one byte back).
        Assert.Equal([FrameFlags.None, FrameFlags.ReturnAddress, FrameFlags.ReturnAddress, FrameFlags.ReturnAddress], sym.Asked.Select(f => f.Flags));
    }
}
