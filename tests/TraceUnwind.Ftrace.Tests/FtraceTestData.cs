using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Testing;

namespace TraceUnwind.Ftrace.Tests;

/// <summary>
/// Helpers over the real captures in <c>fixtures/ftrace/</c>: the converter from a capture's
/// <c>maps/SEQ-TGID-PID-REASON.maps</c> files to the <c>--maps</c> format, an independent
/// (regex) event-line reader mirroring the capture tool's <c>verify_pairs.py</c>, and the
/// <c>pairs.tsv.gz</c> ground truth.
/// </summary>
public static partial class FtraceTestData
{
    public static readonly string[] Captures = ["bash_loop", "python_script", "dlopen", "path_with_space", "forkexec"];

    /// <summary>verify_pairs.py's HDR regex, in .NET syntax: an independent parse of event lines.</summary>
    [GeneratedRegex(@"^\s*(?<comm>.*?)-(?<pid>\d+)\s+(?:\((?<tgid>[\s\d-]+)\)\s+)?\[(?<cpu>\d+)\]\s+(?:(?<flags>\S{4,5})\s+)?(?<ts>\d+(?:\.\d+)?):\s(?<rest>.*)$")]
    public static partial Regex HeaderRegex();

    [GeneratedRegex(@"^(?<seq>\d{5})-(?<tgid>\d+)-(?<pid>\d+)-(?<reason>[a-z-]+)\.maps$")]
    private static partial Regex SnapshotNameRegex();

    /// <summary>Splits text into lines exactly as the pipeline does (no terminators; a final line without newline kept).</summary>
    public static List<string> Lines(string text)
    {
        var lines = text.Split('\n').ToList();
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines;
    }

    /// <summary>The event name as verify_pairs.py takes it: text up to ':', '(', ' ' or '&lt;', or the whole text if it starts with '&lt;'.</summary>
    public static string EventName(string rest) =>
        rest.StartsWith('<') ? rest : Regex.Split(rest, "[:( <]")[0];

    /// <summary>
    /// A capture's snapshots in the <c>--maps</c> format. Each <c>SEQ-TGID-PID-REASON.maps</c> gets
    /// the header <c>==> /proc/TGID/maps &lt;==</c> (or <c>/proc/TGID/task/PID/maps</c>), timed by the
    /// trace line <c>HOLD seq=SEQ</c> that hold wrote right after taking it. post-exec snapshots
    /// have no marker (hold takes them at the PTRACE_EVENT_EXEC stop without syncing): they are
    /// timed at the process's <c>sched_process_exec</c> event after its previous marker. The
    /// holder's and the readers' snapshots stay untimed (end of trace).
    /// </summary>
    public static string SnapshotsAsMapsOption(string capture, string traceFile = "raw.txt")
    {
        var trace = Lines(Fixtures.ReadText("ftrace", capture, traceFile));
        var markerTime = new Dictionary<int, (string Ts, int Line)>();
        for (int i = 0; i < trace.Count; i++)
        {
            var m = Regex.Match(trace[i], @"HOLD seq=(\d+) ");
            if (!m.Success) continue;
            var h = HeaderRegex().Match(trace[i]);
            markerTime[int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)] = (h.Groups["ts"].Value, i);
        }
        var sb = new StringBuilder();
        var dir = Fixtures.Path("ftrace", capture, "maps");
        foreach (var file in Directory.GetFiles(dir).OrderBy(f => f, StringComparer.Ordinal))
        {
            var nm = SnapshotNameRegex().Match(Path.GetFileName(file));
            if (!nm.Success) continue;
            int seq = int.Parse(nm.Groups["seq"].Value, CultureInfo.InvariantCulture);
            int tgid = int.Parse(nm.Groups["tgid"].Value, CultureInfo.InvariantCulture);
            int pid = int.Parse(nm.Groups["pid"].Value, CultureInfo.InvariantCulture);
            string reason = nm.Groups["reason"].Value;
            string? time = null;
            if (markerTime.TryGetValue(seq, out var mt)) time = mt.Ts;
            else if (reason == "post-exec")
            {
                int after = markerTime.TryGetValue(seq - 1, out var prev) ? prev.Line : 0;
                for (int i = after; i < trace.Count && time is null; i++)
                {
                    if (!trace[i].Contains("sched_process_exec: ", StringComparison.Ordinal) || !trace[i].Contains($" pid={pid} ", StringComparison.Ordinal)) continue;
                    time = HeaderRegex().Match(trace[i]).Groups["ts"].Value;
                }
                Assert.NotNull(time);
            }
            sb.Append(tgid == pid ? $"==> /proc/{tgid}/maps <==" : $"==> /proc/{tgid}/task/{pid}/maps <==");
            if (time is not null) sb.Append(" @ ").Append(time);
            sb.Append('\n');
            sb.Append(File.ReadAllText(file));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    public static MapsSnapshots LoadSnapshots(string capture, ErrorTally? tally = null)
    {
        var snaps = new MapsSnapshots();
        MapsSnapshotReader.Read(Encoding.UTF8.GetBytes(SnapshotsAsMapsOption(capture)), capture + "/maps", snaps, tally);
        return snaps;
    }

    /// <summary>Runs the rewrite over bytes (a seekable stream: the two-pass path) and returns the output.</summary>
    public static byte[] Rewrite(byte[] input, RewriteOptions options, ErrorTally? tally = null, bool seekable = true)
    {
        using var inStream = seekable ? new MemoryStream(input, writable: false) : (Stream)new ChunkedStream(input, () => int.MaxValue);
        using var outStream = new MemoryStream();
        var result = FtraceRewriter.RunAsync(inStream, outStream, options, tally ?? new ErrorTally(), "test").GetAwaiter().GetResult();
        Assert.Equal(Pipeline.PipelineEnd.Completed, result.End);
        return outStream.ToArray();
    }

    /// <summary>Events of a trace per CPU, trace_marker lines left out, exactly as verify_pairs.py pairs them.</summary>
    public sealed record TraceEvent(int Line, int Cpu, string Pid, string Event, List<(int Line, string Text)> Frames);

    public static Dictionary<int, List<TraceEvent>> EventsPerCpu(List<string> lines)
    {
        var perCpu = new Dictionary<int, List<TraceEvent>>();
        TraceEvent? cur = null;
        for (int i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            if (line.StartsWith(" =>", StringComparison.Ordinal))
            {
                cur?.Frames.Add((i, line));
                continue;
            }
            var m = HeaderRegex().Match(line);
            if (!m.Success) { cur = null; continue; }
            string ev = EventName(m.Groups["rest"].Value);
            if (ev == "tracing_mark_write") { cur = null; continue; }
            int cpu = int.Parse(m.Groups["cpu"].Value, CultureInfo.InvariantCulture);
            cur = new TraceEvent(i, cpu, m.Groups["pid"].Value, ev, new());
            if (!perCpu.TryGetValue(cpu, out var l)) perCpu[cpu] = l = new();
            l.Add(cur);
        }
        return perCpu;
    }

    /// <summary>One row of <c>pairs.tsv.gz</c>.</summary>
    public sealed record PairRow(int Cpu, int EventIndex, int Frame, string Addr, string RawLine, string SymLine, string SymAddrLine, string MapsLine, string Note);

    public static List<PairRow> Pairs(string capture)
    {
        var rows = Fixtures.ReadText("ftrace", capture, "pairs.tsv.gz").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var header = rows[0].Split('\t');
        int C(string n) => Array.IndexOf(header, n);
        int cCpu = C("cpu"), cIdx = C("event_index_on_cpu"), cFrame = C("frame"), cAddr = C("addr"), cRaw = C("raw_line"),
            cSym = C("sym_line"), cSa = C("symaddr_line"), cMaps = C("maps_line"), cNote = C("note");
        var list = new List<PairRow>();
        foreach (var row in rows.Skip(1))
        {
            var f = row.Split('\t');
            list.Add(new PairRow(int.Parse(f[cCpu], CultureInfo.InvariantCulture), int.Parse(f[cIdx], CultureInfo.InvariantCulture),
                int.Parse(f[cFrame], CultureInfo.InvariantCulture), f[cAddr], f[cRaw], f[cSym], f[cSa], f[cMaps], f.Length > cNote ? f[cNote] : ""));
        }
        return list;
    }

}
