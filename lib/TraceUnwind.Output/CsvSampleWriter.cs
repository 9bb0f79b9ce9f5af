using System.Globalization;
using System.Text;
using CsvHelper;
using CsvHelper.Configuration;
using TraceUnwind.Model;
using TraceUnwind.Output.Internal;
using TraceUnwind.Symbols;

namespace TraceUnwind.Output;

/// <summary>
/// One CSV row per frame (<c>csv</c>), written with CsvHelper (RFC 4180 quoting, <c>\n</c> line ends, UTF-8
/// without BOM). Columns, in this order (the first fifteen are the issue's, names exact):
/// <list type="table">
/// <item><term>sample</term><description><see cref="Sample.Index"/>.</description></item>
/// <item><term>time</term><description>seconds with 9 decimals (<c>134.860713000</c>).</description></item>
/// <item><term>pid, tid, cpu</term><description>decimal; empty when unknown (-1).</description></item>
/// <item><term>comm, event</term><description>as given; a deferred-callchain record with no event name is <c>DEFERRED CALLCHAIN</c>.</description></item>
/// <item><term>frame</term><description>0 = innermost.</description></item>
/// <item><term>kind</term><description><c>kernel</c>, <c>user</c>, <c>hv</c>, <c>guest-kernel</c>, <c>guest-user</c>,
/// <c>user-lost</c> (a deferred user stack that never came), <c>cookie</c> (a cookie marker, <c>--no-merge</c>).</description></item>
/// <item><term>address</term><description>runtime ip, <c>0x…</c>; empty for <c>user-lost</c> and <c>cookie</c> rows (their value is a cookie, see <c>cookie</c>).</description></item>
/// <item><term>path</term><description>the file of a file mapping holding ip; empty otherwise (kernel, <c>[vdso]</c>, anonymous, none).</description></item>
/// <item><term>offset</term><description><c>0x…</c> ip - mapping start (sym-userobj's OFF) whenever the frame has a mapping.</description></item>
/// <item><term>file_offset</term><description><c>0x…</c> ip - mapping start + pgoff (what perf 6.1 prints), same condition.</description></item>
/// <item><term>symbol</term><description><c>name+0xoff</c> when the symbolizer knows the frame; empty otherwise.</description></item>
/// <item><term>reliable</term><description><c>true</c>/<c>false</c>.</description></item>
/// <item><term>dso</term><description>perf's dso name (<see cref="FrameNamer.WriteModule"/>): path, <c>[kernel.kallsyms]</c>, <c>[vdso]</c>, <c>[unknown]</c>.</description></item>
/// <item><term>period</term><description><see cref="Sample.Period"/>.</description></item>
/// <item><term>cookie</term><description><c>0x…</c> for <c>user-lost</c>/<c>cookie</c> rows and for every row of a
/// deferred-callchain record (<c>--no-merge</c>); empty otherwise.</description></item>
/// </list>
/// A sample without frames still gets one row, with <c>frame</c>..<c>reliable</c> and <c>dso</c> empty, so no
/// sample is silently lost.
/// <para>
/// Allocation: CsvHelper takes fields as strings. Strings that repeat are cached (per frame identity:
/// address, path, offsets, symbol, dso; pids, tids, cpus, periods, frame numbers), bounded by
/// <see cref="MaxCachedFrames"/>; per sample the <c>sample</c> and <c>time</c> strings are new
/// (about 100 bytes per sample, measured by a test). <see cref="Flush"/> writes all complete rows to the stream.
/// </para>
/// </summary>
public sealed class CsvSampleWriter : ISampleSink
{
    /// <summary>The header row.</summary>
    public static readonly IReadOnlyList<string> Columns =
    [
        "sample", "time", "pid", "tid", "cpu", "comm", "event", "frame", "kind", "address", "path", "offset",
        "file_offset", "symbol", "reliable", "dso", "period", "cookie",
    ];

    /// <summary>Frame identities whose strings are cached; past this, strings are made per row.</summary>
    public const int MaxCachedFrames = 1 << 20;
    private const int MaxCachedNumbers = 1 << 16;

    private readonly StreamWriter _text;
    private readonly CsvWriter _csv;
    private readonly FrameNamer _namer;
    private readonly Dictionary<FrameKey, FrameStrings> _frames = new();
    private readonly Dictionary<long, string> _numbers = new();
    private readonly string[] _frameNumbers = new string[512];
    private bool _completed;

    private sealed class FrameStrings(string kind, string address, string path, string offset, string fileOffset,
        string symbol, string dso, string cookie)
    {
        public readonly string Kind = kind, Address = address, Path = path, Offset = offset, FileOffset = fileOffset,
            Symbol = symbol, Dso = dso, Cookie = cookie;
    }

    /// <param name="output">Receives UTF-8 CSV; not closed by the writer.</param>
    /// <param name="symbolizer">Fills the <c>symbol</c> column; null = always empty.</param>
    public CsvSampleWriter(Stream output, ISymbolizer? symbolizer = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        _namer = new FrameNamer(symbolizer);
        _text = new StreamWriter(output, new UTF8Encoding(false), 64 * 1024, leaveOpen: true);
        _csv = new CsvWriter(_text, new CsvConfiguration(CultureInfo.InvariantCulture) { NewLine = "\n" }, leaveOpen: true);
        for (int i = 0; i < _frameNumbers.Length; i++) _frameNumbers[i] = i.ToString(CultureInfo.InvariantCulture);
        foreach (var c in Columns) _csv.WriteField(c);
        _csv.NextRecord();
    }

    /// <summary>Rows written (header excluded).</summary>
    public long Rows { get; private set; }

    public void OnSample(in Sample sample)
    {
        if (_completed) throw new InvalidOperationException("the writer is complete");
        string index = sample.Index.ToString(CultureInfo.InvariantCulture);
        string time = FormatTime(sample.Time);
        string pid = Number(sample.Pid), tid = Number(sample.Tid), cpu = Number(sample.Cpu);
        string comm = sample.Comm ?? "";
        bool deferred = sample.Kind == SampleKind.DeferredCallchain;
        string ev = string.IsNullOrEmpty(sample.Event) && deferred ? "DEFERRED CALLCHAIN" : sample.Event ?? "";
        string period = sample.Period <= long.MaxValue ? Number((long)sample.Period) : sample.Period.ToString(CultureInfo.InvariantCulture);
        string sampleCookie = deferred ? "0x" + sample.Cookie.ToString("x", CultureInfo.InvariantCulture) : "";
        var frames = sample.Frames;
        if (frames.IsEmpty)
        {
            Row(index, time, pid, tid, cpu, comm, ev, "", null, "", period, sampleCookie);
            return;
        }
        for (int i = 0; i < frames.Length; i++)
        {
            var fs = Strings(frames[i]);
            string reliable = frames[i].IsReliable ? "true" : "false";
            string cookie = fs.Cookie.Length > 0 ? fs.Cookie : sampleCookie;
            Row(index, time, pid, tid, cpu, comm, ev, i < _frameNumbers.Length ? _frameNumbers[i] : i.ToString(CultureInfo.InvariantCulture),
                fs, reliable, period, cookie);
        }
    }

    private void Row(string index, string time, string pid, string tid, string cpu, string comm, string ev, string frame,
        FrameStrings? f, string reliable, string period, string cookie)
    {
        var c = _csv;
        c.WriteField(index);
        c.WriteField(time);
        c.WriteField(pid);
        c.WriteField(tid);
        c.WriteField(cpu);
        c.WriteField(comm);
        c.WriteField(ev);
        c.WriteField(frame);
        c.WriteField(f?.Kind ?? "");
        c.WriteField(f?.Address ?? "");
        c.WriteField(f?.Path ?? "");
        c.WriteField(f?.Offset ?? "");
        c.WriteField(f?.FileOffset ?? "");
        c.WriteField(f?.Symbol ?? "");
        c.WriteField(reliable);
        c.WriteField(f?.Dso ?? "");
        c.WriteField(period);
        c.WriteField(cookie);
        c.NextRecord();
        Rows++;
    }

    private FrameStrings Strings(in Frame frame)
    {
        var key = new FrameKey(frame);
        if (_frames.TryGetValue(key, out var s)) return s;
        s = MakeStrings(frame);
        if (_frames.Count < MaxCachedFrames) _frames.Add(key, s);
        return s;
    }

    private FrameStrings MakeStrings(in Frame frame)
    {
        bool cookieKind = frame.Kind is FrameKind.UserLost or FrameKind.DeferredCookie;
        string address = cookieKind ? "" : Hex(frame.Address);
        string cookie = cookieKind ? Hex(frame.Address) : "";
        string path = frame.HasFileMapping ? frame.Mapping!.Path : "";
        bool mapped = frame.Mapping is not null && !cookieKind;
        string offset = mapped ? Hex(frame.Offset) : "";
        string fileOffset = mapped ? Hex(frame.FileOffset) : "";
        string symbol = _namer.TryResolve(frame, out var hit) ? $"{hit.Name}+0x{hit.Offset:x}" : "";
        string dso = cookieKind ? "" : _namer.GetModule(frame);
        return new FrameStrings(FrameNamer.KindName(frame.Kind), address, path, offset, fileOffset, symbol, dso, cookie);
    }

    private static string Hex(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    private string Number(long v)
    {
        if (v == -1) return "";
        if (_numbers.TryGetValue(v, out var s)) return s;
        s = v.ToString(CultureInfo.InvariantCulture);
        if (_numbers.Count < MaxCachedNumbers) _numbers.Add(v, s);
        return s;
    }

    private static string FormatTime(ulong ns)
    {
        Span<byte> tmp = stackalloc byte[32];
        int n = Utf8Output.FormatSeconds(tmp, ns);
        return Encoding.ASCII.GetString(tmp[..n]);
    }

    /// <summary>Writes all complete rows to the stream and flushes it.</summary>
    public void Flush()
    {
        _csv.Flush();
        _text.Flush();
    }

    /// <summary>Flushes; CSV has no trailer. Later calls do nothing.</summary>
    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        Flush();
        _csv.Dispose();
        _text.Dispose();
    }
}
