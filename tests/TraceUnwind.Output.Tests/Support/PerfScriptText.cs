using System.Globalization;
using System.Text.RegularExpressions;

namespace TraceUnwind.Output.Tests.Support;

/// <summary>One frame line of perf-script text: <c>\t%16lx [? ]symbol (dso)</c>.</summary>
internal sealed record ScriptFrame(ulong Address, string Symbol, string Dso, bool Unreliable);

/// <summary>One sample block of perf-script text (perf's or ours).</summary>
internal sealed record ScriptSample(
    string Comm, int Pid, int Tid, int Cpu, ulong TimeNs, ulong? Period, string Event,
    bool DeferredCallchain, ulong Cookie, List<ScriptFrame> Frames, int Line);

/// <summary>A sideband line of <c>perf script --show-mmap-events --show-task-events</c>.</summary>
internal sealed record SidebandRecord(ulong TimeNs, string Type, int Pid, int Tid, int ParentPid, int ParentTid,
    ulong Start, ulong Size, ulong PgOff, string Prot, string Path, string Comm, int Line);

/// <summary>
/// A small, independent reader of perf-script text for the tests (not product code): perf 6.1
/// and 7.2's default and <c>-F</c> layouts, the <c>--no-merge-callchains</c> lines and our
/// <see cref="PerfScriptWriter"/> layout. comm is free-form, so the header is matched from the
/// <c>pid/tid</c> (or <c>tid</c>) field that precedes the time.
/// </summary>
internal static partial class PerfScriptText
{
    // comm, [pid/]tid, optional [cpu], time:, then either "DEFERRED CALLCHAIN [cookie: X]",
    // a sideband "PERF_RECORD_...", or [period] event: [trace text].
    [GeneratedRegex(@"^(?<comm>.*?)\s+(?:(?<pid>-?\d+)/)?(?<tid>-?\d+)\s+(?:\[(?<cpu>\d+)\]\s+)?(?<time>\d+\.\d+):\s+(?<rest>.*)$")]
    private static partial Regex Header();

    [GeneratedRegex(@"^DEFERRED CALLCHAIN \[cookie: (?<cookie>[0-9a-f]+)\]$")]
    private static partial Regex Deferred();

    [GeneratedRegex(@"^(?:(?<period>\d+)\s+)?(?<event>[^\s:][^\s]*?):(?:\s+(?<trace>.*))?\s*$")]
    private static partial Regex EventPart();

    [GeneratedRegex(@"^\s+(?<addr>[0-9a-f]+) (?<unrel>\? )?(?<sym>.*) \((?<dso>[^()]*(?:\([^()]*\)[^()]*)*)\)$")]
    private static partial Regex FrameLine();

    [GeneratedRegex(@"^PERF_RECORD_MMAP2? (?<pid>-?\d+)/(?<tid>-?\d+): \[0x(?<start>[0-9a-f]+)\(0x(?<size>[0-9a-f]+)\) @ (?:0x)?(?<pgoff>[0-9a-f]+)[^\]]*\]: (?<prot>\S+) (?<path>.*)$")]
    private static partial Regex Mmap();

    [GeneratedRegex(@"^PERF_RECORD_COMM(?<exec> exec)?: (?<comm>.*):(?<pid>-?\d+)/(?<tid>-?\d+)$")]
    private static partial Regex Comm();

    [GeneratedRegex(@"^PERF_RECORD_(?<type>FORK|EXIT)\((?<pid>-?\d+):(?<tid>-?\d+)\):\((?<ppid>-?\d+):(?<ptid>-?\d+)\)$")]
    private static partial Regex ForkExit();

    /// <summary>Samples and sideband records in file order.</summary>
    public static (List<ScriptSample> Samples, List<SidebandRecord> Sideband, List<object> InOrder) Parse(string text)
    {
        var samples = new List<ScriptSample>();
        var sideband = new List<SidebandRecord>();
        var order = new List<object>();
        var lines = text.Split('\n');
        ScriptSample? current = null;
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            if (line.Length == 0 || line.StartsWith('#'))
            {
                current = null;
                continue;
            }
            if (char.IsWhiteSpace(line[0]))
            {
                if (current is null) throw new FormatException($"line {i + 1}: frame outside a sample: {line}");
                var f = FrameLine().Match(line);
                if (!f.Success) throw new FormatException($"line {i + 1}: not a frame line: {line}");
                current.Frames.Add(new ScriptFrame(ulong.Parse(f.Groups["addr"].Value, NumberStyles.HexNumber),
                    f.Groups["sym"].Value, f.Groups["dso"].Value, f.Groups["unrel"].Success));
                continue;
            }
            var h = Header().Match(line);
            if (!h.Success) throw new FormatException($"line {i + 1}: not a sample header: {line}");
            string comm = h.Groups["comm"].Value.TrimStart();
            int tid = int.Parse(h.Groups["tid"].Value, CultureInfo.InvariantCulture);
            int pid = h.Groups["pid"].Success ? int.Parse(h.Groups["pid"].Value, CultureInfo.InvariantCulture) : -1;
            int cpu = h.Groups["cpu"].Success ? int.Parse(h.Groups["cpu"].Value, CultureInfo.InvariantCulture) : -1;
            ulong time = ParseSeconds(h.Groups["time"].Value);
            string rest = h.Groups["rest"].Value;
            if (rest.StartsWith("PERF_RECORD_", StringComparison.Ordinal))
            {
                current = null;
                var rec = ParseSideband(rest, time, i + 1);
                if (rec is not null)
                {
                    sideband.Add(rec);
                    order.Add(rec);
                }
                continue;
            }
            var d = Deferred().Match(rest);
            if (d.Success)
            {
                current = new ScriptSample(comm, pid, tid, cpu, time, null, "", true,
                    ulong.Parse(d.Groups["cookie"].Value, NumberStyles.HexNumber), [], i + 1);
            }
            else
            {
                var e = EventPart().Match(rest);
                if (!e.Success) throw new FormatException($"line {i + 1}: no event in: {line}");
                ulong? period = e.Groups["period"].Success ? ulong.Parse(e.Groups["period"].Value, CultureInfo.InvariantCulture) : null;
                current = new ScriptSample(comm, pid, tid, cpu, time, period, e.Groups["event"].Value, false, 0, [], i + 1);
            }
            samples.Add(current);
            order.Add(current);
        }
        return (samples, sideband, order);
    }

    private static SidebandRecord? ParseSideband(string rest, ulong time, int line)
    {
        var m = Mmap().Match(rest);
        if (m.Success)
            return new SidebandRecord(time, "MMAP", Int(m, "pid"), Int(m, "tid"), 0, 0,
                Hex(m, "start"), Hex(m, "size"), Hex(m, "pgoff"), m.Groups["prot"].Value, m.Groups["path"].Value, "", line);
        var c = Comm().Match(rest);
        if (c.Success)
            return new SidebandRecord(time, c.Groups["exec"].Success ? "EXEC" : "COMM", Int(c, "pid"), Int(c, "tid"), 0, 0,
                0, 0, 0, "", "", c.Groups["comm"].Value, line);
        var f = ForkExit().Match(rest);
        if (f.Success)
            return new SidebandRecord(time, f.Groups["type"].Value, Int(f, "pid"), Int(f, "tid"), Int(f, "ppid"), Int(f, "ptid"),
                0, 0, 0, "", "", "", line);
        return null; // other records (LOST, THROTTLE, ...) do not change the process model here
    }

    private static int Int(Match m, string g) => int.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);
    private static ulong Hex(Match m, string g) => ulong.Parse(m.Groups[g].Value, NumberStyles.HexNumber);

    /// <summary><c>123.456789</c> (any number of decimals up to 9) to nanoseconds, exactly.</summary>
    public static ulong ParseSeconds(string s)
    {
        int dot = s.IndexOf('.');
        ulong sec = ulong.Parse(s[..dot], CultureInfo.InvariantCulture);
        string frac = s[(dot + 1)..];
        if (frac.Length > 9) throw new FormatException("more than 9 decimals: " + s);
        ulong ns = ulong.Parse(frac.PadRight(9, '0'), CultureInfo.InvariantCulture);
        return sec * 1_000_000_000UL + ns;
    }
}
