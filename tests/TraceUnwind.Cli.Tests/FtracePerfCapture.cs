using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Testing;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// Independent readers (regular expressions over the text real tools printed) for the captures in
/// <c>fixtures/ftrace-perf/</c>: the ftrace event lines and their <c>&lt;user stack trace&gt;</c> blocks,
/// the pairing of the raw and sym-userobj instances' blocks, perf's own text of the side-band
/// records (<c>perf script --ns --show-mmap-events --show-task-events</c>) as an address-space model,
/// and the hold snapshots in the <c>--maps</c> format.
/// </summary>
internal static partial class FtracePerfCapture
{
    public const string Dir = "ftrace-perf";

    public static string CapturePath(params string[] rel) => Fixtures.Path([Dir, .. rel]);

    public static string CaptureText(params string[] rel) => Fixtures.ReadText([Dir, .. rel]);

    // ---- ftrace text ----

    [GeneratedRegex(@"^\s*(?<comm>.*?)-(?<pid>\d+)\s+(?:\((?<tgid>[\s\d-]+)\)\s+)?\[(?<cpu>\d+)\]\s+(?:(?<flags>\S{4,5})\s+)?(?<s>\d+)\.(?<us>\d{6}):\s(?<rest>.*)$")]
    public static partial Regex EventLine();

    [GeneratedRegex(@"^ =>  <(?<addr>[0-9a-f]{16})>$")]
    public static partial Regex RawFrame();

    [GeneratedRegex(@"^ => (?<path>.+)\[\+0x(?<off>[0-9a-f]+)\]$")]
    public static partial Regex UserObjFrame();

    public static long TimeNs(Match eventLine) =>
        long.Parse(eventLine.Groups["s"].Value, CultureInfo.InvariantCulture) * 1_000_000_000L +
        long.Parse(eventLine.Groups["us"].Value, CultureInfo.InvariantCulture) * 1000L;

    /// <summary>A <c>&lt;user stack trace&gt;</c> block: its header line, the task, the event it belongs to, its frame lines.</summary>
    public sealed record UserBlock(int HeaderLine, int Pid, long TimeNs, string EventKey, List<int> FrameLines);

    /// <summary>
    /// The user-stack blocks of a trace. Each block's key is the event line of the same task that
    /// precedes it (its text after the timestamp): the two instances recorded the same events, but
    /// their comm column and flags can differ (looked up at print time) and the timestamps by a few µs.
    /// </summary>
    public static List<UserBlock> Blocks(List<string> lines)
    {
        var blocks = new List<UserBlock>();
        var lastEvent = new Dictionary<int, string>();
        UserBlock? cur = null;
        for (int i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            if (line.StartsWith(" =>", StringComparison.Ordinal))
            {
                cur?.FrameLines.Add(i);
                continue;
            }
            cur = null;
            var m = EventLine().Match(line);
            if (!m.Success) continue;
            int pid = int.Parse(m.Groups["pid"].Value, CultureInfo.InvariantCulture);
            string rest = m.Groups["rest"].Value;
            if (rest == "<user stack trace>")
            {
                cur = new UserBlock(i, pid, TimeNs(m), lastEvent.GetValueOrDefault(pid, ""), new());
                blocks.Add(cur);
            }
            else
            {
                lastEvent[pid] = rest;
            }
        }
        return blocks;
    }

    /// <summary>
    /// Pairs the blocks of two renderings of the same events: per task, the longest common
    /// subsequence of their event keys (one instance may have been switched on a moment earlier and
    /// hold a few events the other lacks). Paired blocks must have the same number of frames.
    /// </summary>
    public static List<(UserBlock A, UserBlock B)> Pair(List<UserBlock> a, List<UserBlock> b)
    {
        var pairs = new List<(UserBlock, UserBlock)>();
        foreach (var pid in a.Select(x => x.Pid).Distinct())
        {
            var xa = a.Where(x => x.Pid == pid).ToList();
            var xb = b.Where(x => x.Pid == pid).ToList();
            var len = new int[xa.Count + 1, xb.Count + 1];
            for (int i = xa.Count - 1; i >= 0; i--)
                for (int j = xb.Count - 1; j >= 0; j--)
                    len[i, j] = xa[i].EventKey == xb[j].EventKey ? len[i + 1, j + 1] + 1 : Math.Max(len[i + 1, j], len[i, j + 1]);
            for (int i = 0, j = 0; i < xa.Count && j < xb.Count;)
            {
                if (xa[i].EventKey == xb[j].EventKey) { pairs.Add((xa[i], xb[j])); i++; j++; }
                else if (len[i + 1, j] >= len[i, j + 1]) i++;
                else j++;
            }
        }
        return pairs.OrderBy(p => p.Item1.HeaderLine).ToList();
    }

    // ---- perf's text of the side-band records ----

    [GeneratedRegex(@"^\s*(?<comm>.*?)\s+(?<pid>-?\d+)\s+\[-?\d+\]\s+(?<s>\d+)\.(?<ns>\d{9}): (?<rec>PERF_RECORD_\w+)(?<rest>.*)$")]
    private static partial Regex PerfLine();

    [GeneratedRegex(@"^ (?<pid>-?\d+)/(?<tid>-?\d+): \[0x(?<start>[0-9a-f]+)\(0x(?<len>[0-9a-f]+)\) @ (?:0x)?(?<pgoff>[0-9a-f]+) [^\]]*\]: (?<prot>[rwxps-]+) (?<path>.*)$")]
    private static partial Regex Mmap2Body();

    [GeneratedRegex(@"^ exec: .*:(?<pid>\d+)/(?<tid>\d+)$")]
    private static partial Regex CommExecBody();

    [GeneratedRegex(@"^\((?<pid>\d+):(?<tid>\d+)\):\((?<ppid>\d+):(?<ptid>\d+)\)$")]
    private static partial Regex TaskBody();

    public sealed record PerfMapping(long Time, ulong Start, ulong End, ulong PgOff, string Path)
    {
        /// <summary>What the kernel calls file-backed: not anonymous (<c>//anon</c>) and not <c>[vdso]</c>, <c>[stack]</c>, ...</summary>
        public bool IsFile => Path.StartsWith('/') && !Path.StartsWith("//", StringComparison.Ordinal);
    }

    private sealed class Image(long start, Image? parent, long forkTime)
    {
        public readonly long Start = start;
        public readonly Image? Parent = parent;
        public readonly long ForkTime = forkTime;
        public readonly List<PerfMapping> Maps = new();

        /// <summary>Mappings visible at <paramref name="t"/>, latest first (a later mapping covers an older one).</summary>
        public IEnumerable<PerfMapping> At(long t)
        {
            for (int i = Maps.Count - 1; i >= 0; i--)
                if (Maps[i].Time <= t) yield return Maps[i];
            if (Parent is not null)
                foreach (var m in Parent.At(ForkTime)) yield return m;
        }
    }

    /// <summary>
    /// Address spaces over time, rebuilt from perf's own text: a COMM exec starts an empty image, a
    /// FORK of a new process starts one holding its parent's mappings at that time, MMAP2 adds.
    /// A lookup at T finds the newest mapping that contains the address among those of the image
    /// live at T (mapped at or before T); if none does, among all of that image's mappings (a library
    /// mapped a moment after T: ftrace stamps are µs, truncated). Only mappings that contain the
    /// address count.
    /// </summary>
    public sealed class PerfModel
    {
        private readonly Dictionary<int, List<Image>> _images = new();
        private readonly Dictionary<int, int> _threads = new();
        public readonly Dictionary<int, List<long>> Execs = new();

        public static PerfModel Load(string capture)
        {
            var model = new PerfModel();
            foreach (var line in Cli.Lines(CaptureText(capture, "perf.sideband.txt")))
            {
                var m = PerfLine().Match(line);
                Assert.True(m.Success, line);
                long t = long.Parse(m.Groups["s"].Value, CultureInfo.InvariantCulture) * 1_000_000_000L + long.Parse(m.Groups["ns"].Value, CultureInfo.InvariantCulture);
                string rest = m.Groups["rest"].Value;
                switch (m.Groups["rec"].Value)
                {
                    case "PERF_RECORD_MMAP2":
                    {
                        var b = Mmap2Body().Match(rest);
                        Assert.True(b.Success, line);
                        int pid = int.Parse(b.Groups["pid"].Value, CultureInfo.InvariantCulture);
                        ulong start = ulong.Parse(b.Groups["start"].Value, NumberStyles.HexNumber);
                        ulong len = ulong.Parse(b.Groups["len"].Value, NumberStyles.HexNumber);
                        ulong pgoff = ulong.Parse(b.Groups["pgoff"].Value, NumberStyles.HexNumber);
                        model.ImageAt(pid, t, create: true)!.Maps.Add(new PerfMapping(t, start, start + len, pgoff, b.Groups["path"].Value));
                        break;
                    }
                    case "PERF_RECORD_COMM":
                    {
                        var b = CommExecBody().Match(rest);
                        if (!b.Success) break;   // a plain comm change (perf-exec)
                        int pid = int.Parse(b.Groups["pid"].Value, CultureInfo.InvariantCulture);
                        model.Insert(pid, new Image(t, null, 0));
                        if (!model.Execs.TryGetValue(pid, out var l)) model.Execs[pid] = l = new();
                        l.Add(t);
                        break;
                    }
                    case "PERF_RECORD_FORK":
                    {
                        var b = TaskBody().Match(rest);
                        Assert.True(b.Success, line);
                        int pid = int.Parse(b.Groups["pid"].Value, CultureInfo.InvariantCulture), tid = int.Parse(b.Groups["tid"].Value, CultureInfo.InvariantCulture);
                        int ppid = int.Parse(b.Groups["ppid"].Value, CultureInfo.InvariantCulture);
                        if (pid == ppid) { model._threads[tid] = pid; break; }
                        model.Insert(pid, new Image(t, model.ImageAt(ppid, t, create: false), t));
                        break;
                    }
                }
            }
            return model;
        }

        private void Insert(int pid, Image image)
        {
            if (!_images.TryGetValue(pid, out var list)) _images[pid] = list = new();
            list.Add(image);
            list.Sort((x, y) => x.Start.CompareTo(y.Start));
        }

        private Image? ImageAt(int pid, long t, bool create)
        {
            if (_images.TryGetValue(pid, out var list))
                for (int i = list.Count - 1; i >= 0; i--)
                    if (list[i].Start <= t) return list[i];
            if (!create) return null;
            var first = new Image(long.MinValue, null, 0);
            Insert(pid, first);
            return first;
        }

        public int ProcessOf(int tid) => _threads.TryGetValue(tid, out var p) ? p : tid;

        /// <summary>The mapping that contains <paramref name="ip"/> for task <paramref name="tid"/> at perf time <paramref name="t"/>, or null.</summary>
        public PerfMapping? Find(int tid, long t, ulong ip)
        {
            var image = ImageAt(ProcessOf(tid), t, create: false);
            if (image is null) return null;
            return image.At(t).FirstOrDefault(m => m.Start <= ip && ip < m.End)
                ?? image.At(long.MaxValue).FirstOrDefault(m => m.Start <= ip && ip < m.End);
        }

        /// <summary>The line the kernel's sym-userobj would print for this frame in the event-time address space.</summary>
        public string ExpectedLine(int tid, long t, ulong ip) =>
            Find(tid, t, ip) is { IsFile: true } m
                ? string.Create(CultureInfo.InvariantCulture, $" => {m.Path}[+0x{ip - m.Start:x}]")
                : string.Create(CultureInfo.InvariantCulture, $" =>  <{ip:x16}>");

        /// <summary>Whether task <paramref name="tid"/>'s process exec'd after perf time <paramref name="t"/>.</summary>
        public bool ExecsAfter(int tid, long t) => Execs.TryGetValue(ProcessOf(tid), out var l) && l.Any(x => x > t);
    }

    // ---- hold's snapshots as --maps input ----

    [GeneratedRegex(@"^(?<seq>\d{5})-(?<tgid>\d+)-(?<pid>\d+)-(?<reason>[a-z-]+)\.maps$")]
    private static partial Regex SnapshotName();

    /// <summary>
    /// A hold capture's snapshots (<c>perfclock</c> here) in the <c>--maps</c> format: <c>SEQ-TGID-PID-REASON.maps</c> gets the
    /// header <c>==> /proc/TGID/maps &lt;==</c> (<c>/proc/TGID/task/PID/maps</c> for a thread) timed <c>@</c> the trace
    /// line <c>HOLD seq=SEQ</c> that hold wrote right after taking it; a post-exec snapshot (no marker) is timed at
    /// the process's next <c>sched_process_exec</c> line; the holder's own stays untimed.
    /// </summary>
    public static string SnapshotsAsMapsOption(string capture) => SnapshotsAsMapsOption([Dir, capture]);

    /// <summary>The same for any hold capture folder under <c>fixtures/</c> (<c>ftrace/bash_loop</c>, ...).</summary>
    public static string SnapshotsAsMapsOption(string[] captureDir)
    {
        var trace = Cli.Lines(Fixtures.ReadText([.. captureDir, "raw.txt"]));
        var markers = new Dictionary<int, (string Ts, int Line)>();
        for (int i = 0; i < trace.Count; i++)
        {
            var m = Regex.Match(trace[i], @"HOLD seq=(\d+) ");
            if (!m.Success) continue;
            var h = EventLine().Match(trace[i]);
            markers[int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)] = ($"{h.Groups["s"].Value}.{h.Groups["us"].Value}", i);
        }
        var sb = new StringBuilder();
        foreach (var file in Directory.GetFiles(Fixtures.Path([.. captureDir, "maps"])).OrderBy(f => f, StringComparer.Ordinal))
        {
            var n = SnapshotName().Match(System.IO.Path.GetFileName(file));
            if (!n.Success) continue;
            int seq = int.Parse(n.Groups["seq"].Value, CultureInfo.InvariantCulture);
            int tgid = int.Parse(n.Groups["tgid"].Value, CultureInfo.InvariantCulture), pid = int.Parse(n.Groups["pid"].Value, CultureInfo.InvariantCulture);
            string? time = null;
            if (markers.TryGetValue(seq, out var mk)) time = mk.Ts;
            else if (n.Groups["reason"].Value == "post-exec")
            {
                int from = markers.TryGetValue(seq - 1, out var prev) ? prev.Line : 0;
                for (int i = from; i < trace.Count && time is null; i++)
                    if (trace[i].Contains("sched_process_exec: ", StringComparison.Ordinal) && trace[i].Contains($" pid={pid} ", StringComparison.Ordinal))
                    {
                        var h = EventLine().Match(trace[i]);
                        time = $"{h.Groups["s"].Value}.{h.Groups["us"].Value}";
                    }
                Assert.NotNull(time);
            }
            sb.Append(tgid == pid ? $"==> /proc/{tgid}/maps <==" : $"==> /proc/{tgid}/task/{pid}/maps <==");
            if (time is not null) sb.Append(" @ ").Append(time);
            sb.Append('\n').Append(File.ReadAllText(file)).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// ftrace `local` minus perf's clock in the localclock capture, in ns: the median over its
    /// sched_process_* events of raw.txt's time (trace_clock local) minus clk.txt's (trace_clock perf,
    /// the same events recorded by a third instance; perf's default clock is the same local_clock()).
    /// </summary>
    public static long LocalClockOffsetNs()
    {
        static List<(string Key, long T)> Sched(string file)
        {
            var list = new List<(string, long)>();
            foreach (var line in Cli.Lines(CaptureText("localclock", file)))
            {
                var m = EventLine().Match(line);
                if (m.Success && m.Groups["rest"].Value.StartsWith("sched_process_", StringComparison.Ordinal))
                    list.Add((m.Groups["pid"].Value + " " + m.Groups["rest"].Value, TimeNs(m)));
            }
            return list;
        }
        var raw = Sched("raw.txt");
        var clk = Sched("clk.txt");
        Assert.Equal(raw.Select(x => x.Key), clk.Select(x => x.Key));
        var diffs = raw.Zip(clk, (a, b) => a.T - b.T).Order().ToList();
        return diffs[diffs.Count / 2];
    }
}
