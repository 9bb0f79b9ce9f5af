using System.Buffers.Text;
using System.Text;
using TraceUnwind.Model;
using TraceUnwind.Output.Internal;
using TraceUnwind.Symbols;
using TraceUnwind.Text;

namespace TraceUnwind.Output;

/// <summary>
/// perf-script-like text (<c>script</c>). The layout, fixed and parseable:
/// <code>
/// {comm} {pid,7}/{tid,-7} [{cpu:000}] {seconds.nanoseconds,15}: {period,10} {event}:
/// \t{address,16:x} {symbol} ({dso})
/// \t{address,16:x} ? {symbol} ({dso})                  an unreliable frame
/// \t               0 [deferred user stack lost] ([unknown])
/// \t{cookie,16:x} (cookie) ([unknown])                  --no-merge: the sample's cookie marker
/// (blank line)
/// {comm} {pid,7}/{tid,-7} [{cpu:000}] {seconds.nanoseconds,15}: DEFERRED CALLCHAIN [cookie: {cookie:x}]
/// \t{address,16:x} {symbol} ({dso})                  --no-merge: a deferred record and its user frames
/// (blank line)
/// </code>
/// It is perf's own layout (<c>perf script -F comm,pid,tid,cpu,time,period,event,ip,sym,symoff,dso</c>:
/// comm as is, it may contain spaces, so a reader finds the <c>pid/tid</c> field from the right;
/// <c>%7d/%-7d</c>, <c>[%03d]</c> only when the cpu is known; time with 9 decimals as <c>perf script --ns</c>
/// prints it; <c>%10lu</c> period; frames <c>\t%16lx sym+0xoff (dso)</c>, innermost first), with three
/// differences: the dso of a user frame in a file mapping is the kernel's <c>path[+0xOFF]</c>
/// (OFF = ip - mapping start) and the address is always the runtime ip; an unreliable frame gets
/// <c>? </c> before its symbol, as in the kernel's stack dumps; a lost deferred user stack is one
/// explicit line with address 0 (the cookie is never printed as an address). An unknown pid or tid
/// is <c>-1</c>. The cookie lines are perf 7.2's <c>--no-merge-callchains</c> lines.
/// A sample with no frames is just its header line and the blank line.
/// <para>
/// Every sample is formatted into one pooled buffer; the buffer goes to the stream when it holds
/// 32 KB and on <see cref="Flush"/>, which also flushes the stream. No allocation per sample
/// (the symbolizer's own work aside). <see cref="Complete"/> adds no trailer (the output stays
/// perf-script text) and flushes.
/// </para>
/// </summary>
public sealed class PerfScriptWriter : ISampleSink
{
    private readonly Utf8Output _out;
    private readonly FrameNamer _namer;
    private bool _completed;

    /// <param name="output">Receives UTF-8 text; not closed by the writer.</param>
    /// <param name="symbolizer">Names frames (<c>symbol+0xoff</c>); null = <c>[unknown]</c> everywhere.</param>
    public PerfScriptWriter(Stream output, ISymbolizer? symbolizer = null)
    {
        _out = new Utf8Output(output);
        _namer = new FrameNamer(symbolizer);
    }

    /// <summary>Samples written (deferred-callchain records included).</summary>
    public long Samples { get; private set; }

    public void OnSample(in Sample sample)
    {
        if (_completed) throw new InvalidOperationException("the writer is complete");
        var o = _out;
        // The header line, formatted straight into the output buffer.
        string comm = sample.Comm ?? "", ev = sample.Event ?? "";
        int bound = Encoding.UTF8.GetMaxByteCount(comm.Length) + Encoding.UTF8.GetMaxByteCount(ev.Length) + 160;
        var span = o.GetSpan(bound);
        int p = Encoding.UTF8.GetBytes(comm, span);
        span[p++] = (byte)' ';
        p += Utf8Output.FormatDecimalAligned(span[p..], sample.Pid, 7);
        span[p++] = (byte)'/';
        p += Utf8Output.FormatDecimalAligned(span[p..], sample.Tid, -7);
        span[p++] = (byte)' ';
        if (sample.Cpu >= 0)
        {
            span[p++] = (byte)'[';
            if (sample.Cpu < 10) { span[p++] = (byte)'0'; span[p++] = (byte)'0'; }
            else if (sample.Cpu < 100) span[p++] = (byte)'0';
            Utf8Formatter.TryFormat(sample.Cpu, span[p..], out int n);
            p += n;
            span[p++] = (byte)']';
            span[p++] = (byte)' ';
        }
        p += Utf8Output.FormatSecondsAligned(span[p..], sample.Time, 15);
        span[p++] = (byte)':';
        span[p++] = (byte)' ';
        if (sample.Kind == SampleKind.DeferredCallchain)
        {
            "DEFERRED CALLCHAIN [cookie: "u8.CopyTo(span[p..]);
            p += 28;
            p += Hex.Write(span[p..], sample.Cookie);
            span[p++] = (byte)']';
            span[p++] = (byte)'\n';
        }
        else
        {
            p += Utf8Output.FormatDecimalAligned(span[p..], (long)Math.Min(sample.Period, long.MaxValue), 10);
            span[p++] = (byte)' ';
            p += Encoding.UTF8.GetBytes(ev, span[p..]);
            span[p++] = (byte)':';
            span[p++] = (byte)'\n';
        }
        // Frame lines: each written in one piece; the span is renewed only when the next line may not fit.
        var namer = _namer;
        foreach (ref readonly var frame in sample.Frames)
        {
            int n = namer.TryWriteScriptLine(span[p..], frame, out int need);
            if (n < 0)
            {
                o.Advance(p);
                span = o.GetSpan(need);
                p = 0;
                n = namer.TryWriteScriptLine(span, frame, out _);
            }
            p += n;
        }
        if (span.Length - p < 1)
        {
            o.Advance(p);
            span = o.GetSpan(1);
            p = 0;
        }
        span[p++] = (byte)'\n';
        o.Advance(p);
        Samples++;
        o.DrainIfOver();
    }

    /// <summary>Writes every complete sample to the stream and flushes it.</summary>
    public void Flush() => _out.Flush();

    /// <summary>Flushes; script text has no trailer. Later calls do nothing.</summary>
    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        _out.Flush();
        _out.Release();
    }
}
