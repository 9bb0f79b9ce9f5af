using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Testing;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// MMAP/MMAP2/COMM/FORK/EXIT records, in delivery order, against
/// <c>perf script --show-mmap-events --show-task-events</c> (perf 6.1: <c>*.mmap_task_events.txt</c>;
/// perf 7.2: <c>script-F-sideband.txt.gz</c>): each record printed the way perf's
/// <c>perf_event__fprintf_*</c> print it, plus its time to the µs.
/// </summary>
public sealed class SidebandTests
{
    /// <summary>Prints records as perf does and remembers their time.</summary>
    internal sealed class SidebandPrinter : PerfRecordHandler
    {
        public readonly List<(ulong Time, string Text)> Lines = new();

        public override void OnMmap(in PerfMmap m)
        {
            var sb = new StringBuilder();
            if (!m.IsMmap2)
            {
                sb.Append($"PERF_RECORD_MMAP {m.Pid}/{m.Tid}: [{Hex(m.Address)}({Hex(m.Length)}) @ {Hex(m.PgOff)}]: {(m.IsData ? 'r' : 'x')} {Encoding.UTF8.GetString(m.FileName)}");
            }
            else
            {
                sb.Append($"PERF_RECORD_MMAP2 {m.Pid}/{m.Tid}: [{Hex(m.Address)}({Hex(m.Length)}) @ {Hex(m.PgOff)} ");
                if (m.HasBuildId) sb.Append('<').Append(Convert.ToHexStringLower(m.BuildId)).Append('>');
                else sb.Append($"{m.Major:x2}:{m.Minor:x2} {m.Inode} {m.InodeGeneration}");
                sb.Append("]: ");
                sb.Append((m.Prot & 1) != 0 ? 'r' : '-').Append((m.Prot & 2) != 0 ? 'w' : '-').Append((m.Prot & 4) != 0 ? 'x' : '-')
                  .Append((m.Flags & 1) != 0 ? 's' : 'p');
                sb.Append(' ').Append(Encoding.UTF8.GetString(m.FileName));
            }
            Lines.Add((m.Record.SampleId.Time, sb.ToString()));
        }

        public override void OnComm(in PerfComm c) =>
            Lines.Add((c.Record.SampleId.Time, $"PERF_RECORD_COMM{(c.IsExec ? " exec" : "")}: {Encoding.UTF8.GetString(c.Comm)}:{c.Pid}/{c.Tid}"));

        public override void OnFork(in PerfTaskEvent t) =>
            Lines.Add((t.Record.SampleId.Time, $"PERF_RECORD_FORK({t.Pid}:{t.Tid}):({t.ParentPid}:{t.ParentTid})"));

        public override void OnExit(in PerfTaskEvent t) =>
            Lines.Add((t.Record.SampleId.Time, $"PERF_RECORD_EXIT({t.Pid}:{t.Tid}):({t.ParentPid}:{t.ParentTid})"));

        private static string Hex(ulong v) => v == 0 ? "0" : $"0x{v:x}";
    }

    private static readonly Regex Line = new(@"\s(?<s>\d+)\.(?<us>\d{6}): (?<body>PERF_RECORD_.*)$", RegexOptions.Compiled);

    internal static List<(ulong Micros, string Body)> ParsePerf(string text)
    {
        var list = new List<(ulong, string)>();
        foreach (var l in text.Split('\n'))
        {
            if (!l.Contains("PERF_RECORD_")) continue;
            var m = Line.Match(l.TrimEnd());
            Assert.True(m.Success, $"unparsed: {l}");
            list.Add((ulong.Parse(m.Groups["s"].Value) * 1_000_000 + ulong.Parse(m.Groups["us"].Value), m.Groups["body"].Value));
        }
        return list;
    }

    public static TheoryData<string, string> Captures()
    {
        var d = new TheoryData<string, string>();
        foreach (var w in new[] { "bash_loop", "dlopen", "python_script" })
            foreach (var k in new[] { "fp", "dwarf", "tp" })
                d.Add($"perf/{w}/{k}.data", $"perf/{w}/{k}.mmap_task_events.txt");
        d.Add("perf-local/pipe.data", "perf-local/pipe.mmap_task_events.txt");
        d.Add("perf-local/zstd.data", "perf-local/zstd.mmap_task_events.txt");
        d.Add("perf-local/pipe-tp.data", "perf-local/pipe-tp.mmap_task_events.txt");
        foreach (var c in new[] { "recur-fp", "bash-fp", "recur-defer", "bash-defer" })
            d.Add($"perf-defer/{c}/perf.data", $"perf-defer/{c}/script-F-sideband.txt.gz");
        return d;
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void SidebandRecordsMatchPerfScript(string data, string truth)
    {
        var printer = new SidebandPrinter();
        using var fs = File.OpenRead(Fixtures.Path(data.Split('/')));
        var reader = new PerfRecordReader(fs, data);
        reader.Run(printer);
        var perf = ParsePerf(Fixtures.ReadText(truth.Split('/')));
        Assert.Equal(0, reader.Tally.ErrorCount);
        Assert.Equal(perf.Count, printer.Lines.Count);
        for (int i = 0; i < perf.Count; i++)
        {
            Assert.Equal(perf[i].Body, printer.Lines[i].Text);
            Assert.True(perf[i].Micros == printer.Lines[i].Time / 1000, $"{data} record {i} ({perf[i].Body}): time {printer.Lines[i].Time}");
        }
    }
}
