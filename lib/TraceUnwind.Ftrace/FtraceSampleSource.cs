using System.Runtime.CompilerServices;
using System.IO.Pipelines;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Ftrace.Pipeline;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Text;

namespace TraceUnwind.Ftrace;

/// <summary>Options of <see cref="FtraceSampleSource"/>.</summary>
public sealed record FtraceSampleSourceOptions
{
    /// <summary>Where raw user frames find their mapping (find_vma); null: raw frames get none.</summary>
    public IMapsSource? Maps { get; init; }

    /// <summary>Lines longer than this pass unparsed and are counted.</summary>
    public int MaxLineLength { get; init; } = LineFramer.DefaultMaxLineLength;

    /// <summary>Frames kept per sample (kernel + user); more are dropped and counted.</summary>
    public int MaxFrames { get; init; } = 512;

    /// <summary>Call <see cref="ISampleSink.Complete"/> when the input ends (default); off to feed several sources into one sink.</summary>
    public bool CompleteSink { get; init; } = true;
}

/// <summary>
/// ftrace text (trace, trace_pipe, trace-cmd report) as samples: each event together with the
/// <c>&lt;stack trace&gt;</c> and <c>&lt;user stack trace&gt;</c> blocks that follow it (same pid and
/// CPU) becomes one <see cref="Sample"/>: kernel frames then user frames, innermost first;
/// <see cref="Sample.Time"/> the event's timestamp (ns, or the count of an integer clock);
/// <see cref="Sample.Pid"/> the thread group when known (record-tgid column, trace-cmd -R's
/// tgid, or the maps source), else -1; <see cref="Sample.Tid"/> the pid column;
/// <see cref="Sample.Event"/> the event name (<c>sched_switch</c>, <c>sys_openat</c>; a block whose
/// event was lost is named <c>user_stack</c> / <c>kernel_stack</c>); <see cref="Sample.Period"/> 1.
/// Events without stack blocks are not samples.
/// <para>
/// User frames: a raw address gets the mapping the maps source's <c>find_vma</c> returns (it
/// may lie above the address: the kernel's rule, wrapped offset); a line the kernel resolved
/// without address (<c>path[+0xOFF]</c>) becomes a frame whose <see cref="Frame.Address"/> is OFF
/// in a mapping of that path starting at 0, so <see cref="Frame.Offset"/> and the
/// <c>path[+0xOFF]</c> rendering are right but the runtime address and file offset are unknown;
/// with sym-addr (<c>path[+0xOFF] &lt;addr&gt;</c>) the address is real and the mapping starts at
/// addr - OFF. Kernel frames carry their printed name in <see cref="Frame.Symbol"/>, and their
/// address under sym-addr.
/// </para>
/// </summary>
public sealed class FtraceSampleSource : ISampleSource
{
    private readonly Stream _input;
    private readonly string _sourceName;
    private readonly FtraceSampleSourceOptions _options;
    private readonly ErrorTally _tally;

    /// <param name="input">The text; read to its end, not closed.</param>
    /// <param name="sourceName">File name or <c>stdin</c>, for messages.</param>
    public FtraceSampleSource(Stream input, string sourceName, FtraceSampleSourceOptions? options, ErrorTally tally)
    {
        _input = input;
        _sourceName = sourceName;
        _options = options ?? new FtraceSampleSourceOptions();
        _tally = tally;
    }

    /// <summary>Samples produced by the last run.</summary>
    public long SampleCount { get; private set; }

    /// <summary>Lines read by the last run.</summary>
    public long LineCount { get; private set; }

    /// <exception cref="IOException">Reading the input failed.</exception>
    public async Task RunAsync(ISampleSink sink, CancellationToken cancellationToken)
    {
        var pipelineOptions = new LinePipelineOptions { MaxLineLength = _options.MaxLineLength };
        bool twoPass = _options.Maps is MapsSnapshots && _input.CanSeek;
        if (twoPass)
        {
            // Snapshots choose by the next exec: learn them all first (see FtraceRewriter).
            var snaps = (MapsSnapshots)_options.Maps!;
            long start = _input.Position;
            await ExecScanner.ScanAsync(_input, snaps, _options.MaxLineLength, cancellationToken).ConfigureAwait(false);
            if (FtraceRewriter.FindLastTimestamp(_input, start) is { } last) snaps.SetEndOfTrace(last);
            _input.Position = start;
        }
        var builder = new SampleBuilder(sink, _options, _tally, _sourceName);
        var lookahead = !twoPass && _options.Maps is MapsSnapshots s ? new ExecScanner(s) : null;
        var pipeline = new LinePipeline(builder, pipelineOptions, _tally, _sourceName, lookahead);
        var reader = StreamPump.Start(_input, cancellationToken: cancellationToken);
        try
        {
            await pipeline.RunAsync(reader, null, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
        builder.Finish();
        SampleCount = builder.Samples;
        LineCount = pipeline.Framer.LinesSeen;
        sink.Flush();
        if (_options.CompleteSink) sink.Complete();
    }

    /// <summary>The line handler that groups events and blocks into samples.</summary>
    internal sealed class SampleBuilder : ILineHandler
    {
        private enum Block : byte { None, User, Kernel, TraceCmdUser, TraceCmdKernel }

        private const string LineTooBigCode = "ftrace.stack.line-too-big";
        private const string TooManyFramesCode = "ftrace.stack.frames-capped";

        private readonly ISampleSink _sink;
        private readonly IMapsSource? _maps;
        private readonly ErrorTally _tally;
        private readonly string _source;
        private readonly StringPool _strings = new();
        private readonly Dictionary<(string Path, ulong Start), Mapping> _synthetic = new();
        private readonly Frame[] _kernel, _user, _all;
        private int _kernelCount, _userCount;

        // The pending event (the sample being assembled).
        private bool _pending, _hasKernel, _hasUser;
        private string _comm = "", _event = "";
        private int _pid = -1, _tgid = -1, _cpu = -1;
        private TraceTimestamp _time;
        private TracePoint _when;
        private Block _block;
        private int _blockPid, _blockTgidColumn, _blockFrames;
        private TracePoint _blockWhen;

        public SampleBuilder(ISampleSink sink, FtraceSampleSourceOptions options, ErrorTally tally, string source)
        {
            _sink = sink;
            _maps = options.Maps;
            _tally = tally;
            _source = source;
            int max = Math.Max(1, options.MaxFrames);
            _kernel = new Frame[max];
            _user = new Frame[max];
            _all = new Frame[max];
        }

        public long Samples { get; private set; }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public bool OnLine(ReadOnlySpan<byte> line, in LinePosition position, out ReadOnlySpan<byte> replacement)
        {
            replacement = default;
            switch (FtraceLine.Classify(line))
            {
                case LineKind.Frame:
                    if (_block is Block.User or Block.Kernel && FrameLineParser.TryParse(line, out var f))
                        AddFrame(f, position);
                    return false;
                case LineKind.TraceCmdFrame:
                    if (_block is Block.TraceCmdUser or Block.TraceCmdKernel && FrameLineParser.TryParseTraceCmd(line, 0, out var tf))
                        AddFrame(tf, position);
                    return false;
                case LineKind.Text:
                    OnText(line, position);
                    return false;
                default:
                    // Headers, LOST, buffer-started, blank lines: nothing attaches across them.
                    Emit();
                    _block = Block.None;
                    return false;
            }
        }

        public void OnLongLine(in LinePosition position)
        {
            Emit();
            _block = Block.None;
        }

        public void OnIdle()
        {
            _sink.Flush();
        }

        public void Finish() => Emit();

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void OnText(ReadOnlySpan<byte> line, in LinePosition position)
        {
            if (!EventLineParser.TryParse(line, out var ev))
            {
                // context-info off: every event line is its text alone.
                ev = EventLineParser.NoContext(line);
            }
            var when = new TracePoint(ev.Timestamp, position.ByteOffset);
            if (ev.IsUserStackHeader)
            {
                Attach(ev, when, user: true);
                _block = Block.User;
                return;
            }
            if (ev.IsKernelStackHeader)
            {
                Attach(ev, when, user: false);
                _block = Block.Kernel;
                return;
            }
            var name = ev.EventName;
            if (ev.Layout != EventLayout.NoContext && name.SequenceEqual(FtraceText.TraceCmdUserStack))
            {
                Attach(ev, when, user: true);
                _block = Block.TraceCmdUser;
                AddTraceCmdFirst(line, ev, position, user: true);
                return;
            }
            if (ev.Layout != EventLayout.NoContext && name.SequenceEqual(FtraceText.TraceCmdKernelStack))
            {
                Attach(ev, when, user: false);
                _block = Block.TraceCmdKernel;
                AddTraceCmdFirst(line, ev, position, user: false);
                return;
            }
            // An ordinary event: it owns the blocks that follow.
            Emit();
            _block = Block.None;
            if (_maps is not null && ev.Layout != EventLayout.NoContext) SchedEvents.Dispatch(_maps, ev, when);
            _pending = true;
            _hasKernel = _hasUser = false;
            _kernelCount = _userCount = 0;
            _comm = _strings.Intern(ev.Comm);
            _event = _strings.Intern(name);
            _pid = ev.Pid;
            _tgid = ev.Tgid;
            _cpu = ev.Cpu;
            _time = ev.Timestamp;
            _when = when;
        }

        /// <summary>A stack block starts: it belongs to the pending event if that is the same task on the same CPU and has no such block yet.</summary>
        private void Attach(in EventLine ev, in TracePoint when, bool user)
        {
            bool belongs = _pending && ev.Pid == _pid && ev.Cpu == _cpu && !_hasUser && (user || !_hasKernel);
            if (!belongs)
            {
                // Its event was lost (overwritten ring buffer, [LOST n EVENTS]) or never printed.
                Emit();
                _pending = true;
                _hasKernel = _hasUser = false;
                _kernelCount = _userCount = 0;
                _comm = _strings.Intern(ev.Comm);
                _event = user ? "user_stack" : "kernel_stack";
                _pid = ev.Pid;
                _tgid = ev.Tgid;
                _cpu = ev.Cpu;
                _time = ev.Timestamp;
                _when = when;
            }
            if (user) _hasUser = true; else _hasKernel = true;
            if (_tgid < 0 && ev.Tgid >= 0) _tgid = ev.Tgid;
            _blockPid = ev.Pid;
            _blockTgidColumn = ev.Tgid;
            _blockWhen = when;
            _blockFrames = 0;
        }

        private void AddTraceCmdFirst(ReadOnlySpan<byte> line, in EventLine ev, in LinePosition position, bool user)
        {
            int tab = line.IndexOf(FtraceText.TraceCmdFramePrefix);
            if (tab > 0)
            {
                if (FrameLineParser.TryParseTraceCmd(line, tab, out var f)) AddFrame(f, position);
                return;
            }
            // trace-cmd report -R: "tgid=13700 caller=ARRAY[53, f3, 49, 47, 22, 7f, 00, 00, ...]" (8 little-endian words).
            var text = ev.Text;
            int t = text.StartsWith("tgid="u8) ? 5 : text.IndexOf(" tgid="u8) is int k and >= 0 ? k + 6 : -1;
            if (t >= 0 && EventLineParser.TryTakeInt(text, ref t, out int tgid) && tgid > 0)
            {
                _tgid = tgid;
                _blockTgidColumn = tgid;
            }
            int arr = text.IndexOf("ARRAY["u8);
            if (arr < 0) return;
            var bytes = text[(arr + 6)..];
            int close = bytes.IndexOf((byte)']');
            if (close < 0) return;
            bytes = bytes[..close];
            Span<byte> word = stackalloc byte[8];
            int n = 0;
            while (!bytes.IsEmpty)
            {
                int comma = bytes.IndexOf((byte)',');
                var item = (comma < 0 ? bytes : bytes[..comma]).Trim((byte)' ');
                bytes = comma < 0 ? default : bytes[(comma + 1)..];
                if (!Hex.TryParse(item, out ulong b) || b > 0xff) return;
                word[n++] = (byte)b;
                if (n < 8) continue;
                n = 0;
                ulong address = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(word);
                if (address == 0) break;   // the kernel stops at the first 0 entry
                if (user) AddUserAddress(address, position); else AddKernel(new Frame(address, FrameKind.Kernel), position);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void AddFrame(in FrameLine f, in LinePosition position)
        {
            bool user = _block is Block.User or Block.TraceCmdUser;
            if (!user)
            {
                if (f.Form == FrameForm.Symbol)
                {
                    if (f.Symbol.SequenceEqual("0"u8) && !f.HasAddress) return;   // seq_print_ip_sym prints "0" for address 0
                    AddKernel(new Frame(f.Address, FrameKind.Kernel, null, FrameFlags.None, _strings.Intern(f.SymbolName)), position);
                }
                else if (f.Form == FrameForm.TraceCmdAddress && f.Address != 0)
                {
                    AddKernel(new Frame(f.Address, FrameKind.Kernel), position);
                }
                return;
            }
            switch (f.Form)
            {
                case FrameForm.Raw:
                    AddUserAddress(f.Address, position);
                    break;
                case FrameForm.TraceCmdAddress:
                    if (f.Address != 0) AddUserAddress(f.Address, position);   // 0x0 pads to 8
                    break;
                case FrameForm.UserObj:
                    AddUser(new Frame(f.Offset, FrameKind.User, Synthetic(f.Path, 0), FlagsFor(_blockFrames)), position);
                    break;
                case FrameForm.UserObjAddress:
                {
                    var m = _maps is { IsTimeAware: true } ? _maps.FindVma(BlockTgid, _blockWhen, f.Address) : null;
                    if (m is not { IsFileBacked: true }) m = Synthetic(f.Path, unchecked(f.Address - f.Offset));
                    AddUser(new Frame(f.Address, FrameKind.User, m, FlagsFor(_blockFrames)), position);
                    break;
                }
                case FrameForm.LineTooBig:
                    _tally.Add(LineTooBigCode, new InputPosition(_source, position.ByteOffset, position.Line),
                        _tally.WantsExample(LineTooBigCode) ? "the kernel's line buffer overflowed ([LINE TOO BIG]): the rest of this user stack was lost" : null,
                        TallySeverity.Notice);
                    break;
            }
        }

        private int BlockTgid
        {
            get
            {
                if (_blockTgidColumn > 0) return _blockTgidColumn;
                if (_tgid > 0) return _tgid;
                int t = _maps?.ProcessOf(_blockPid) ?? -1;
                return t > 0 ? t : _blockPid;
            }
        }

        private static FrameFlags FlagsFor(int index) => index == 0 ? FrameFlags.None : FrameFlags.ReturnAddress;

[MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void AddUserAddress(ulong address, in LinePosition position)
        {
            Mapping? m = null;
            // The rewrite's (and the kernel's sym-userobj) rule: a frame is named by a file-backed mapping
            // or not at all. find_vma's first mapping above a garbage address can be [vsyscall] or [stack]:
            // fold printed "[vsyscall][+0x575000656e016e74]" where rewrite printed "<575000656d616e74>".
            if (_maps is not null && _blockPid > 0 && _maps.FindVma(BlockTgid, _blockWhen, address) is { IsFileBacked: true } found) m = found;
            AddUser(new Frame(address, FrameKind.User, m, FlagsFor(_blockFrames)), position);
        }

[MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void AddUser(in Frame frame, in LinePosition position)
        {
            _blockFrames++;
            if (_userCount + _kernelCount >= _all.Length) { Capped(position); return; }
            _user[_userCount++] = frame;
        }

[MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void AddKernel(in Frame frame, in LinePosition position)
        {
            _blockFrames++;
            if (_userCount + _kernelCount >= _all.Length) { Capped(position); return; }
            _kernel[_kernelCount++] = frame;
        }

        private void Capped(in LinePosition position) =>
            _tally.Add(TooManyFramesCode, new InputPosition(_source, position.ByteOffset, position.Line),
                _tally.WantsExample(TooManyFramesCode) ? $"more than {_all.Length} frames in one sample: the rest dropped" : null,
                TallySeverity.Notice);

        private Mapping Synthetic(ReadOnlySpan<byte> path, ulong start)
        {
            string p = _strings.Intern(path);
            if (_synthetic.TryGetValue((p, start), out var m)) return m;
            if (_synthetic.Count >= 16384) _synthetic.Clear();   // bounded on endless input
            m = new Mapping(start, ulong.MaxValue, 0, p, Mapping.ProtRead | Mapping.ProtExec, MappingKind.File);
            _synthetic.Add((p, start), m);
            return m;
        }

[MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Emit()
        {
            if (!_pending) return;
            _pending = false;
            if (!_hasKernel && !_hasUser) return;
            _kernel.AsSpan(0, _kernelCount).CopyTo(_all);
            _user.AsSpan(0, _userCount).CopyTo(_all.AsSpan(_kernelCount));
            int tgid = _tgid >= 0 ? _tgid : (_pid > 0 && _maps is not null ? _maps.ProcessOf(_pid) : -1);
            var sample = new Sample
            {
                Index = Samples,
                Time = _time.Value,
                Pid = tgid,
                Tid = _pid,
                Cpu = _cpu,
                Period = 1,
                Ip = 0,
                Comm = _comm,
                Event = _event,
                Frames = _all.AsSpan(0, _kernelCount + _userCount),
                Kind = SampleKind.Event,
            };
            Samples++;
            _sink.OnSample(sample);
        }
    }
}
