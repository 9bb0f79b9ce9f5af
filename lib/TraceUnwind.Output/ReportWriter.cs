using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using TraceUnwind.Model;
using TraceUnwind.Output.Internal;
using TraceUnwind.Symbols;

namespace TraceUnwind.Output;

/// <summary>Options of <see cref="ReportWriter"/>.</summary>
public sealed record ReportOptions
{
    /// <summary>What Overhead is a share of: the period (default, as perf report) or the sample count.</summary>
    public SampleWeight Weight { get; init; } = SampleWeight.Period;

    /// <summary>Rows per event at most (the heaviest); 0 = all.</summary>
    public int MaxRows { get; init; }
}

/// <summary>
/// A perf-report-like summary (<c>report</c>): the self overhead of each (comm, dso, symbol) of the
/// innermost frame, per event, like <c>perf report --stdio --no-children -n --sort comm,dso,sym</c>:
/// <code>
/// # traceunwind report
/// #
/// # Total samples: 886
/// # Events: 1
/// #   cpu-clock: 886 samples, period 886886886
/// #
/// # Samples: 886  of event 'cpu-clock'
/// # Event count (approx.): 886886886
/// #
/// # Overhead  Samples  Command  Shared Object           Symbol
/// # ........  .......  .......  ......................  .........................
/// #
///     25.40%      225  recur    /capture/bin/recur      [.] recurse
///      2.03%       18  recur    [kernel.kallsyms]       [k] clear_page_erms
///      0.90%        8  recur    /usr/lib/.../libc.so.6  [.] /usr/lib/x86_64-linux-gnu/libc.so.6[+0xbde27]
/// </code>
/// Differences from perf report: the Shared Object is the full path (perf shows the file name); a user
/// frame without symbol is named <c>path[+0xOFF]</c> (perf: <c>0x00007f...</c> raw address); an
/// unsymbolized kernel frame is <c>[k] 0xffffffff...</c> as in perf; the sample count column (<c>-n</c>) is
/// always shown; "self" is the innermost frame of the stack (perf uses the sample ip, which is the same
/// frame for every callchain it records, except a deferred sample whose stack never came: here
/// <c>[deferred user stack lost]</c>); there are no children/call-graph sections and no
/// "Total Lost Samples" line (lost records are the front end's summary on stderr).
/// Percentages have two decimals of <see cref="ReportOptions.Weight"/>; rows are sorted by weight, then
/// samples, then comm, dso and symbol. Deferred-callchain records (<c>--no-merge</c>) are not samples and are
/// skipped; cookie frames are passed over when looking for the innermost frame.
/// Memory: one entry per distinct (event, comm, dso, symbol). Everything is written by <see cref="Complete"/>.
/// </summary>
public sealed class ReportWriter : ISampleSink
{
    private readonly Utf8Output _out;
    private readonly ReportOptions _options;
    private readonly FrameNamer _namer;
    private readonly FrameNameCache _frames;
    private readonly Dictionary<string, int> _events = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _comms = new(StringComparer.Ordinal);
    private readonly List<string> _eventNames = [], _commNames = [];
    private readonly StackTable _rows = new();
    private readonly int _noFrame;
    private bool _completed;

    /// <param name="output">Receives UTF-8 text; not closed by the writer.</param>
    /// <param name="symbolizer">Names frames; null = <c>path[+0xOFF]</c> and addresses.</param>
    /// <param name="options">null = defaults.</param>
    public ReportWriter(Stream output, ISymbolizer? symbolizer = null, ReportOptions? options = null)
    {
        _out = new Utf8Output(output);
        _options = options ?? new ReportOptions();
        _namer = new FrameNamer(symbolizer);
        _frames = new FrameNameCache(Render);
        _noFrame = _frames.Names.Intern(".\0[unknown]\0[unknown]"u8);
    }

    public long Samples { get; private set; }

    // Key text: "k" or ".", NUL, dso, NUL, symbol.
    private void Render(in Frame frame, ArrayBufferWriter<byte> destination)
    {
        destination.Write(FrameNamer.IsKernelSide(frame.Kind) ? "k\0"u8 : ".\0"u8);
        _namer.WriteModule(destination, frame);
        destination.Write("\0"u8);
        _namer.WriteName(destination, frame);
    }

    public void OnSample(in Sample sample)
    {
        if (_completed) throw new InvalidOperationException("the writer is complete");
        if (sample.Kind != SampleKind.Event) return;
        int frame = _noFrame;
        foreach (ref readonly var f in sample.Frames)
        {
            if (f.Kind == FrameKind.DeferredCookie) continue;
            frame = _frames.GetId(f);
            break;
        }
        Span<int> key = [Id(_events, _eventNames, sample.Event ?? ""), Id(_comms, _commNames, sample.Comm ?? ""), frame];
        _rows.Add(key, sample.Period);
        Samples++;
    }

    private static int Id(Dictionary<string, int> ids, List<string> names, string s)
    {
        ref int id = ref CollectionsMarshal.GetValueRefOrAddDefault(ids, s, out bool exists);
        if (!exists)
        {
            id = names.Count;
            names.Add(s);
        }
        return id;
    }

    /// <summary>Nothing is complete before the end: writes nothing (and flushes the stream).</summary>
    public void Flush() => _out.Flush();

    private sealed record Row(int Event, string Comm, string Dso, string Symbol, long Samples, ulong Period);

    /// <summary>Writes the report and flushes. Later calls do nothing.</summary>
    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        var rows = new List<Row>(_rows.Count);
        for (int e = 0; e < _rows.Count; e++)
        {
            var k = _rows[e];
            var parts = _frames.Names.GetString(k[2]).Split('\0');
            rows.Add(new Row(k[0], _commNames[k[1]], parts[1], $"[{parts[0]}] {parts[2]}", _rows.Samples(e), _rows.Period(e)));
        }
        var sb = new StringBuilder();
        sb.Append("# traceunwind report\n#\n");
        sb.Append(CultureInfo.InvariantCulture, $"# Total samples: {Samples}\n");
        sb.Append(CultureInfo.InvariantCulture, $"# Events: {_eventNames.Count}\n");
        var perEvent = rows.GroupBy(r => r.Event).OrderBy(g => g.Key).ToList();
        foreach (var g in perEvent)
            sb.Append(CultureInfo.InvariantCulture, $"#   {_eventNames[g.Key]}: {g.Sum(r => r.Samples)} samples, period {Sum(g)}\n");
        sb.Append("#\n");
        Write(sb);
        foreach (var g in perEvent)
        {
            long samples = g.Sum(r => r.Samples);
            ulong period = Sum(g);
            double total = _options.Weight == SampleWeight.Period ? period : samples;
            var list = g.OrderByDescending(r => Weight(r)).ThenByDescending(r => r.Samples)
                .ThenBy(r => r.Comm, StringComparer.Ordinal).ThenBy(r => r.Dso, StringComparer.Ordinal)
                .ThenBy(r => r.Symbol, StringComparer.Ordinal).ToList();
            if (_options.MaxRows > 0 && list.Count > _options.MaxRows) list = list.GetRange(0, _options.MaxRows);
            int commWidth = Math.Max("Command".Length, list.Count == 0 ? 0 : list.Max(r => r.Comm.Length));
            int dsoWidth = Math.Max("Shared Object".Length, list.Count == 0 ? 0 : list.Max(r => r.Dso.Length));
            int symWidth = Math.Max("Symbol".Length, list.Count == 0 ? 0 : list.Max(r => r.Symbol.Length));
            sb.Append(CultureInfo.InvariantCulture, $"# Samples: {samples}  of event '{_eventNames[g.Key]}'\n");
            sb.Append(CultureInfo.InvariantCulture, $"# Event count (approx.): {period}\n#\n");
            sb.Append("# Overhead  Samples  ").Append("Command".PadRight(commWidth)).Append("  ")
                .Append("Shared Object".PadRight(dsoWidth)).Append("  Symbol\n");
            sb.Append("# ........  .......  ").Append(new string('.', commWidth)).Append("  ")
                .Append(new string('.', dsoWidth)).Append("  ").Append(new string('.', symWidth)).Append("\n#\n");
            foreach (var r in list)
            {
                double pct = total == 0 ? 0 : 100.0 * Weight(r) / total;
                sb.Append(pct.ToString("F2", CultureInfo.InvariantCulture).PadLeft(9)).Append('%');
                sb.Append("  ").Append(r.Samples.ToString(CultureInfo.InvariantCulture).PadLeft(7));
                sb.Append("  ").Append(r.Comm.PadRight(commWidth));
                sb.Append("  ").Append(r.Dso.PadRight(dsoWidth));
                sb.Append("  ").Append(r.Symbol).Append('\n');
                if (sb.Length > 16 * 1024) Write(sb);
            }
            sb.Append('\n');
            Write(sb);
        }
        Write(sb);
        _out.Flush();
        _out.Release();
    }

    private double Weight(Row r) => _options.Weight == SampleWeight.Period ? r.Period : r.Samples;

    private static ulong Sum(IEnumerable<Row> rows)
    {
        ulong s = 0;
        foreach (var r in rows) s = unchecked(s + r.Period);
        return s;
    }

    private void Write(StringBuilder sb)
    {
        foreach (var chunk in sb.GetChunks()) _out.WriteString(chunk.ToString());
        sb.Clear();
        _out.DrainIfOver();
    }
}
