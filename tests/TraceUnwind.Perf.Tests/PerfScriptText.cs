using System.Globalization;
using System.Text.RegularExpressions;

namespace TraceUnwind.Perf.Tests;

/// <summary>One frame line of <c>perf script -F ...,ip,sym,dso,symoff</c>: <c>\t    ADDR SYM+0xOFF (DSO)</c>.</summary>
public sealed record ScriptFrame(ulong Address, string Symbol, string Dso)
{
    public bool IsInlined => Dso == "inlined";
    public bool IsCookie => Symbol == "(cookie)";
}

/// <summary>One sample (or DEFERRED CALLCHAIN pseudo-sample) of perf script output.</summary>
public sealed record ScriptSample(string Comm, int Pid, int Tid, ulong Seconds, ulong Micros, string Event, List<ScriptFrame> Frames)
{
    public ulong TimeMicros => Seconds * 1_000_000 + Micros;
    public bool IsDeferredCallchain => Event.StartsWith("DEFERRED CALLCHAIN", StringComparison.Ordinal);
    public ulong Cookie => IsDeferredCallchain
        ? ulong.Parse(Regex.Match(Event, @"cookie: ([0-9a-f]+)").Groups[1].Value, NumberStyles.HexNumber) : 0;
}

/// <summary>Parses perf script's text (perf 6.1 and 7.2 layouts) into samples.</summary>
public static class PerfScriptText
{
    // "bash  4144/4144   5675.428135: cpu-clock: " / "recur     360/360       134.861562: DEFERRED CALLCHAIN [cookie: cf00000001]"
    private static readonly Regex Header = new(@"^(?<comm>.*?)\s+(?<pid>-?\d+)/(?<tid>-?\d+)\s+(?<s>\d+)\.(?<us>\d{6}):\s+(?<ev>.*?):?\s*$", RegexOptions.Compiled);
    // "\t    7f50772f7d00 [unknown] (/usr/lib/...)"; the symbol can contain spaces and parentheses.
    private static readonly Regex FrameLine = new(@"^\s+(?<addr>[0-9a-f]+) (?<sym>.*) \((?<dso>[^()]*)\)$", RegexOptions.Compiled);

    public static List<ScriptSample> Parse(string text)
    {
        var list = new List<ScriptSample>();
        ScriptSample? cur = null;
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.Length == 0) { cur = null; continue; }
            if (line[0] == '\t' || line[0] == ' ' && cur is not null)
            {
                var f = FrameLine.Match(line);
                if (!f.Success) throw new FormatException($"unparsed frame line: {line}");
                cur!.Frames.Add(new ScriptFrame(ulong.Parse(f.Groups["addr"].Value, NumberStyles.HexNumber), f.Groups["sym"].Value, f.Groups["dso"].Value));
                continue;
            }
            var h = Header.Match(line);
            if (!h.Success) throw new FormatException($"unparsed header line: {line}");
            cur = new ScriptSample(h.Groups["comm"].Value.Trim(), int.Parse(h.Groups["pid"].Value), int.Parse(h.Groups["tid"].Value),
                ulong.Parse(h.Groups["s"].Value), ulong.Parse(h.Groups["us"].Value), h.Groups["ev"].Value.Trim(), new List<ScriptFrame>());
            list.Add(cur);
        }
        return list;
    }

    /// <summary>
    /// Folds perf's inline expansion back into one frame per callchain entry: perf prints the
    /// inlined functions of an address as extra lines with the same address and "(inlined)" as
    /// dso; a run of lines with one address is one entry (its dso from a non-inlined line, if any).
    /// </summary>
    public static List<ScriptFrame> CollapseInlines(List<ScriptFrame> frames)
    {
        var result = new List<ScriptFrame>();
        for (int i = 0; i < frames.Count;)
        {
            int j = i;
            while (j + 1 < frames.Count && frames[j + 1].Address == frames[i].Address && (frames[j].IsInlined)) j++;
            var real = frames.Skip(i).Take(j - i + 1).LastOrDefault(f => !f.IsInlined) ?? frames[j];
            result.Add(real);
            i = j + 1;
        }
        return result;
    }
}
