using TraceUnwind.Model;
using TraceUnwind.Output.Internal;
using TraceUnwind.Symbols;

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
        o.WriteString(sample.Comm);
        o.WriteByte((byte)' ');
        o.WriteDecimalAligned(sample.Pid, 7);
        o.WriteByte((byte)'/');
        o.WriteDecimalAligned(sample.Tid, -7);
        o.WriteByte((byte)' ');
        if (sample.Cpu >= 0)
        {
            o.Write("["u8);
            if (sample.Cpu < 10) o.Write("00"u8);
            else if (sample.Cpu < 100) o.WriteByte((byte)'0');
            o.WriteDecimal(sample.Cpu);
            o.Write("] "u8);
        }
        o.WriteSeconds(sample.Time, 15);
        o.Write(": "u8);
        if (sample.Kind == SampleKind.DeferredCallchain)
        {
            o.Write("DEFERRED CALLCHAIN [cookie: "u8);
            o.WriteHex(sample.Cookie);
            o.Write("]\n"u8);
        }
        else
        {
            o.WriteDecimalAligned((long)Math.Min(sample.Period, long.MaxValue), 10);
            o.WriteByte((byte)' ');
            o.WriteString(sample.Event);
            o.Write(":\n"u8);
        }
        foreach (ref readonly var frame in sample.Frames)
        {
            o.WriteByte((byte)'\t');
            o.WriteHexPadded(frame.Kind == FrameKind.UserLost ? 0 : frame.Address, 16);
            o.WriteByte((byte)' ');
            if (!frame.IsReliable) o.Write("? "u8);
            _namer.WriteScriptSymbol(o, frame);
            o.Write(" ("u8);
            _namer.WriteDso(o, frame);
            o.Write(")\n"u8);
        }
        o.WriteByte((byte)'\n');
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
