using System.Runtime.CompilerServices;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Ftrace.Pipeline;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Symbols;
using TraceUnwind.Text;

namespace TraceUnwind.Ftrace.Rewrite;

/// <summary>What <c>traceunwind rewrite</c> does.</summary>
public sealed record RewriteOptions
{
    /// <summary>Where address spaces come from; null leaves every frame as it is.</summary>
    public IMapsSource? Maps { get; init; }

    /// <summary>Write the sym-addr form <c>path[+0xOFF] &lt;00007f...&gt;</c> (the kernel's <c>sym-userobj</c> + <c>sym-addr</c>).</summary>
    public bool KeepAddress { get; init; }

    /// <summary>Names user frames: appends <c>" symbol+0xoff"</c> to each rewritten frame whose address lies inside its mapping.</summary>
    public ISymbolizer? Symbolizer { get; init; }

    /// <summary>Lines longer than this pass through unchanged and are counted.</summary>
    public int MaxLineLength { get; init; } = LineFramer.DefaultMaxLineLength;

    /// <summary>Output is flushed at least every this many bytes (and whenever the input goes idle).</summary>
    public int FlushThreshold { get; init; } = 1 << 20;
}

/// <summary>Counts of what a rewrite did with the user frames it saw.</summary>
public sealed class RewriteStatistics
{
    /// <summary>Frame lines inside <c>&lt;user stack trace&gt;</c> blocks and trace-cmd <c>user_stack</c> events (0x0 padding excluded).</summary>
    public long UserFrames { get; internal set; }
    /// <summary>Raw frames written as <c>path[+0xOFF]</c>.</summary>
    public long Rewritten { get; internal set; }
    /// <summary>Raw frames left raw: no file-backed mapping at or above the address (anon, heap, stack, vdso, garbage), or process unknown.</summary>
    public long LeftRaw { get; internal set; }
    /// <summary>sym-addr lines (<c>path[+0xOFF] &lt;addr&gt;</c>) the kernel resolved against a different mapping than the event-time one, corrected.</summary>
    public long Corrected { get; internal set; }
    /// <summary>Frames already in sym-userobj form, passed through.</summary>
    public long AlreadyResolved { get; internal set; }
    /// <summary>Frames in blocks without a pid (context-info off), passed through.</summary>
    public long WithoutContext { get; internal set; }
}

/// <summary>
/// The <c>rewrite</c> line handler: tracks which block each line belongs to and rewrites user
/// frames into the kernel's sym-userobj form.
/// <list type="bullet">
/// <item>A raw frame <c>" =>  &lt;00007f2bbd351bd3&gt;"</c> in a <c>&lt;user stack trace&gt;</c> block becomes
/// <c>" => /usr/lib/x86_64-linux-gnu/libc.so.6[+0xadbd3]"</c> when <c>find_vma</c> in the event's
/// process finds a file-backed mapping (offset = ip - vm_start of that mapping, wrapped when
/// the address lies below it), or the sym-addr form with <see cref="RewriteOptions.KeepAddress"/>.
/// Otherwise it stays raw, exactly as the kernel leaves it.</item>
/// <item>Lines the kernel already resolved: <c>path[+0xOFF]</c> without an address cannot be
/// looked up again and pass through. The sym-addr form <c>path[+0xOFF] &lt;addr&gt;</c> is
/// replaced only when the maps source is time-aware (snapshots, perf events: the address
/// space at the event's time) and finds a file-backed mapping: that answer is better than
/// the kernel's read-time one (which may come from a later image after an exec). With the live
/// source (read time, like the kernel) they pass through.</item>
/// <item>trace-cmd's <c>"\t=> 0x7f224749f353"</c> frames are rewritten in their own layout
/// (<c>"\t=> path[+0xOFF]"</c>, the first one on the event line); <c>=> 0x0</c> padding stays.</item>
/// <item>Every other line, kernel <c>&lt;stack trace&gt;</c> frames included, is untouched.</item>
/// </list>
/// Process events (<c>sched_process_exec/fork/exit</c>) are passed to the maps source as they go by.
/// Allocation-free per line once its buffers have grown.
/// </summary>
public sealed class UserStackRewriter : ILineHandler
{
    private enum Block : byte { None, User, Kernel, TraceCmdUser }

    private const int TgidUnresolved = -2;

    private readonly IMapsSource? _maps;
    private readonly bool _keepAddress;
    private readonly ISymbolizer? _symbolizer;
    private readonly ScratchBuffer _out = new(1024);

    private Block _block;
    private bool _haveContext;
    private int _pid, _tgidColumn, _tgid, _frameIndex;
    private TracePoint _when;

    public UserStackRewriter(RewriteOptions options)
    {
        _maps = options.Maps;
        _keepAddress = options.KeepAddress;
        _symbolizer = options.Symbolizer;
    }

    public RewriteStatistics Statistics { get; } = new();

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool OnLine(ReadOnlySpan<byte> line, in LinePosition position, out ReadOnlySpan<byte> replacement)
    {
        replacement = default;
        if (line.IsEmpty)
        {
            _block = Block.None;
            return false;
        }
        byte c = line[0];
        if (c == (byte)' ' && FrameLineParser.IsFrameLine(line))
            return _block == Block.User && RewriteUserFrame(line, out replacement);
        if (c == (byte)'\t')
        {
            // trace-cmd's continuation lines; anything else indented with a tab leaves the block as it is.
            return _block == Block.TraceCmdUser && line.StartsWith(FtraceText.TraceCmdFramePrefix)
                && RewriteTraceCmdFrame(line, 0, out replacement);
        }
        _block = Block.None;
        if (c == (byte)'#') return false;
        return OnTextLine(line, position, out replacement);
    }

    public void OnLongLine(in LinePosition position) => _block = Block.None;

    public void OnIdle() { }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool OnTextLine(ReadOnlySpan<byte> line, in LinePosition position, out ReadOnlySpan<byte> replacement)
    {
        replacement = default;
        // Cheap tests first: most event lines are neither stack headers nor process events.
        if (line.EndsWith(FtraceText.UserStackHeader))
        {
            if (line.Length == FtraceText.UserStackHeader.Length)
            {
                // context-info off: the block has no pid to look up.
                _block = Block.User;
                _haveContext = false;
                return false;
            }
            if (EventLineParser.TryParse(line, out var ev) && ev.IsUserStackHeader) StartBlock(Block.User, ev, position);
            return false;
        }
        if (line.EndsWith(FtraceText.KernelStackHeader))
        {
            _block = Block.Kernel;
            return false;
        }
        if (_maps is not null && line.IndexOf(FtraceText.SchedProcess) >= 0)
        {
            if (EventLineParser.TryParse(line, out var ev))
                SchedEvents.Dispatch(_maps, ev, new TracePoint(ev.Timestamp, position.ByteOffset));
            return false;
        }
        int tab = line.IndexOf(FtraceText.TraceCmdFramePrefix);
        if (tab > 0 && EventLineParser.TryParse(line, out var tc) && tc.EventName.SequenceEqual(FtraceText.TraceCmdUserStack))
        {
            StartBlock(Block.TraceCmdUser, tc, position);
            return RewriteTraceCmdFrame(line, tab, out replacement);
        }
        return false;
    }

    private void StartBlock(Block block, in EventLine ev, in LinePosition position)
    {
        _block = block;
        _haveContext = ev.Pid >= 0;
        _pid = ev.Pid;
        _tgidColumn = ev.Tgid;
        _tgid = TgidUnresolved;
        _frameIndex = 0;
        _when = new TracePoint(ev.Timestamp, position.ByteOffset);
    }

    private int Tgid
    {
        get
        {
            if (_tgid == TgidUnresolved)
            {
                // The record-tgid column when printed; else what the maps source knows; else the pid itself.
                int t = _tgidColumn > 0 ? _tgidColumn : _maps!.ProcessOf(_pid);
                _tgid = t > 0 ? t : _pid;
            }
            return _tgid;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool RewriteUserFrame(ReadOnlySpan<byte> line, out ReadOnlySpan<byte> replacement)
    {
        replacement = default;
        int index = _frameIndex++;
        if (!FrameLineParser.TryParse(line, out var f)) return false;
        if (f.Form is FrameForm.LineTooBig or FrameForm.Symbol) return false;
        Statistics.UserFrames++;
        if (!_haveContext)
        {
            Statistics.WithoutContext++;
            return false;
        }
        if (f.Form == FrameForm.UserObj)
        {
            Statistics.AlreadyResolved++;
            return false;
        }
        if (_maps is null || _pid <= 0)
        {
            if (f.Form == FrameForm.Raw) Statistics.LeftRaw++;
            return false;
        }
        if (f.Form == FrameForm.UserObjAddress && !_maps.IsTimeAware)
        {
            Statistics.AlreadyResolved++;
            return false;
        }
        var m = _maps.FindVma(Tgid, _when, f.Address);
        if (m is not { IsFileBacked: true })
        {
            if (f.Form == FrameForm.Raw) Statistics.LeftRaw++; else Statistics.AlreadyResolved++;
            return false;
        }
        _out.Reset();
        _out.Write(FtraceText.FramePrefix);
        UserObj.Write(_out, m, f.Address, _keepAddress || f.Form == FrameForm.UserObjAddress);
        AppendSymbol(m, f.Address, index);
        replacement = _out.WrittenSpan;
        if (f.Form == FrameForm.UserObjAddress)
        {
            if (replacement.SequenceEqual(line))
            {
                Statistics.AlreadyResolved++;
                return false;
            }
            Statistics.Corrected++;
        }
        else
        {
            Statistics.Rewritten++;
        }
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool RewriteTraceCmdFrame(ReadOnlySpan<byte> line, int tab, out ReadOnlySpan<byte> replacement)
    {
        replacement = default;
        int index = _frameIndex++;
        if (!FrameLineParser.TryParseTraceCmd(line, tab, out var f) || f.Form != FrameForm.TraceCmdAddress || f.Address == 0)
            return false;   // "=> 0x0" pads the 8 slots: not a frame
        Statistics.UserFrames++;
        if (_maps is null || !_haveContext || _pid <= 0)
        {
            Statistics.LeftRaw++;
            return false;
        }
        var m = _maps.FindVma(Tgid, _when, f.Address);
        if (m is not { IsFileBacked: true })
        {
            Statistics.LeftRaw++;
            return false;
        }
        _out.Reset();
        _out.Write(line[..f.ContentStart]);
        UserObj.Write(_out, m, f.Address, _keepAddress);
        AppendSymbol(m, f.Address, index);
        Statistics.Rewritten++;
        replacement = _out.WrittenSpan;
        return true;
    }

    private void AppendSymbol(Mapping m, ulong address, int index)
    {
        if (_symbolizer is null || !m.Contains(address)) return;
        // Frame 0 is the exact user ip; the others are return addresses (looked up at ip - 1).
        var frame = new Frame(address, FrameKind.User, m, index == 0 ? FrameFlags.None : FrameFlags.ReturnAddress);
        if (!_symbolizer.TryResolve(frame, out var hit) || string.IsNullOrEmpty(hit.Name)) return;
        _out.Write((byte)' ');
        int max = System.Text.Encoding.UTF8.GetMaxByteCount(hit.Name.Length);
        var span = _out.GetSpan(max + 3 + 16);
        int n = System.Text.Encoding.UTF8.GetBytes(hit.Name, span);
        "+0x"u8.CopyTo(span[n..]);
        n += 3;
        n += Hex.Write(span[n..], hit.Offset);
        _out.Advance(n);
    }
}
