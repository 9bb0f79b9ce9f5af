using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Unwinding;

namespace TraceUnwind.Perf;

/// <summary>
/// The last stage of the perf pipeline: keeps the process model current from MMAP/COMM/FORK/EXIT
/// and turns each SAMPLE into a <see cref="Sample"/> for an <see cref="ISampleSink"/>.
///
/// Callchain to frames (perf <c>thread__resolve_callchain_sample</c> / <c>add_callchain_ip</c>):
/// <list type="bullet">
/// <item>Context markers (<c>PERF_CONTEXT_*</c>, any entry &gt;= <c>PERF_CONTEXT_MAX</c>) set the
/// kind of the entries after them and are not frames; before any marker entries count as user
/// (perf starts in cpumode USER).</item>
/// <item>The first entry of each context is the interrupted ip; the later ones are return
/// addresses (<see cref="FrameFlags.ReturnAddress"/>).</item>
/// <item>User frames get the mapping holding them in the sample's process at this point of the
/// time-ordered stream; kernel frames the kernel map. Addresses in no mapping, <c>[vdso]</c>,
/// <c>//anon</c>, JIT code: kept, with a null or non-file mapping, never dropped.</item>
/// <item>A chain ending in <c>PERF_CONTEXT_USER_DEFERRED, cookie</c> gives its kernel frames and one
/// <see cref="FrameKind.DeferredCookie"/> frame (Address = cookie). A joiner stage placed before this
/// builder forwards joined samples in perf's merged form (the chain without its cookie, then the
/// deferred ips; <see cref="PerfDeferredResolution.Joined"/>), which come out as kernel frames and
/// user frames resolved against the maps at that point of the stream; or marks a sample whose record
/// never came (<see cref="PerfDeferredResolution.Lost"/>: one <see cref="FrameKind.UserLost"/> frame).</item>
/// <item><c>--call-graph dwarf</c> samples (REGS_USER + STACK_USER, no user part in the chain) go to the
/// <see cref="IUserStackUnwinder"/> when there is one; otherwise the user part is the sampled ip
/// when the sample was taken in user mode.</item>
/// <item>A sample without a callchain is its ip alone.</item>
/// </list>
/// Nothing is allocated per sample: frames go into one reused array, comms and paths are interned.
/// </summary>
public sealed class PerfSampleBuilder : IPerfRecordHandler
{
    /// <summary>
    /// Frames per sample: a 64 KiB record holds at most 8190 callchain entries; a joined deferred sample has its own
    /// chain and its record's ips (two records' worth); plus unwound user frames.
    /// </summary>
    public const int MaxFrames = 2 * 8192 + MaxUnwoundFrames;
    /// <summary>Cap on frames an unwinder may add.</summary>
    public const int MaxUnwoundFrames = 1024;

    private readonly PerfSession _session;
    private readonly ISampleSink _sink;
    private readonly ErrorTally _tally;
    private readonly IUserStackUnwinder? _unwinder;
    private readonly bool _emitDeferred;
    private readonly Frame[] _frames = new Frame[MaxFrames];
    // When the sink runs on its own thread, frames are built straight into its batch (no second copy).
    private readonly PipelinedSink? _pipeline;
    private readonly AddressSpace _noMaps = new();
    private long _index;

    public PerfSampleBuilder(PerfSession session, ISampleSink sink, PerfReadOptions options, ErrorTally tally, PerfProcessModel? processes = null)
    {
        _session = session;
        _sink = sink;
        _pipeline = sink as PipelinedSink;
        _tally = tally;
        _unwinder = options.Unwinder;
        _emitDeferred = options.EmitDeferredCallchains;
        Processes = processes ?? new PerfProcessModel(options.MaxExitedProcesses);
    }

    public PerfProcessModel Processes { get; }
    /// <summary>Samples handed to the sink.</summary>
    public long SamplesEmitted => _index;

    public void OnMmap(in PerfMmap mmap) => Processes.OnMmap(mmap);
    public void OnComm(in PerfComm comm) => Processes.OnComm(comm);
    public void OnFork(in PerfTaskEvent fork) => Processes.OnFork(fork);
    public void OnExit(in PerfTaskEvent exit) => Processes.OnExit(exit);
    public void OnOtherRecord(in PerfRecord record) { }
    public void OnIdle() => _sink.Flush();
    public void OnEnd() { }

    public void OnSample(in PerfSample s) => Emit(in s, default);

    /// <summary>
    /// A joined deferred sample in two parts, as the deferred-callchain joiner holds them: <paramref name="s"/> with
    /// its chain up to the <c>USER_DEFERRED</c> marker (the cookie cut off; <see cref="PerfDeferredResolution.Joined"/>)
    /// and the record's ips. The same as <see cref="OnSample"/> of perf's merged form (that chain, then the ips),
    /// without building the merged chain.
    /// </summary>
    internal void OnJoinedSample(in PerfSample s, ReadOnlySpan<ulong> deferredIps) => Emit(in s, deferredIps);

    private void Emit(in PerfSample s, ReadOnlySpan<ulong> tail)
    {
        Processes.NoteThread(s.Pid, s.Tid);
        // At most: every callchain entry, plus the cookie or the sampled ip, or the unwound user frames.
        Span<Frame> dest = _pipeline is null
            ? _frames
            : _pipeline.FrameSpace(Math.Min(MaxFrames, s.Callchain.Length + tail.Length + 2 + (_unwinder is null ? 0 : MaxUnwoundFrames)));
        int n = BuildFrames(s, tail, dest);
        var attr = s.Event.Attr;
        var sample = new Sample
        {
            Index = _index++,
            Time = s.Time,
            Pid = s.Pid,
            Tid = s.Tid,
            Cpu = s.Cpu,
            // evsel__parse_sample: period defaults to attr.sample_period when PERIOD is not sampled.
            Period = (s.SampleType & PerfSampleType.Period) != 0 ? s.Period : attr.SamplePeriod,
            Ip = s.Ip,
            Comm = Processes.CommOf(s.Pid, s.Tid),
            Event = s.Event.Name,
            Frames = dest[..n],
            Kind = SampleKind.Event,
        };
        if (_pipeline is null) _sink.OnSample(in sample);
        else _pipeline.OnSampleInPlace(in sample);
    }

    public void OnDeferredCallchain(in PerfDeferredCallchain d)
    {
        if (!_emitDeferred) return;
        var sid = d.Record.SampleId;
        int n = 0;
        var ips = d.Ips;
        var user = Processes.UserMaps(sid.Pid);
        for (int i = 0; i < ips.Length && n < _frames.Length; i++)
        {
            // Deferred ips carry no markers; a value in the marker range is frame-pointer junk
            // (0xffffffffffffffff seen in real captures). perf drops the whole chain; we drop the word.
            if (ips[i] >= PerfContext.Max) { CountOdd(d.Record.FileOffset, ips[i], "marker-range word in a deferred callchain"); continue; }
            _frames[n++] = new Frame(ips[i], FrameKind.User, user.Find(ips[i]), n == 0 ? FrameFlags.None : FrameFlags.ReturnAddress);
        }
        var sample = new Sample
        {
            Index = _index++,
            Time = sid.Time,
            Pid = sid.Pid,
            Tid = sid.Tid,
            Cpu = sid.Cpu,
            Period = 0,
            Comm = Processes.CommOf(sid.Pid, sid.Tid),
            Event = d.Record.Event?.Name ?? "",
            Frames = _frames.AsSpan(0, n),
            Kind = SampleKind.DeferredCallchain,
            Cookie = d.Cookie,
        };
        _sink.OnSample(in sample);
    }

    /// <summary>Frames of <paramref name="s"/>'s chain followed by <paramref name="tail"/> (a joined sample's deferred ips; empty otherwise).</summary>
    private int BuildFrames(in PerfSample s, ReadOnlySpan<ulong> tail, Span<Frame> frames)
    {
        int n = 0, userFrames = 0;
        bool deferred = s.HasDeferredUserCallchain;
        var kind = FrameKind.User;
        bool first = true;
        var user = Processes.UserMaps(s.Pid);
        var kernelMaps = Processes.Table.KernelMaps;
        AddChain(deferred ? s.Callchain[..^2] : s.Callchain, s, ref kind, ref first, ref n, ref userFrames, user, kernelMaps, frames);
        // A joined sample's chain ends in its marker, so no run of addresses spans the two parts.
        if (!tail.IsEmpty) AddChain(tail, s, ref kind, ref first, ref n, ref userFrames, user, kernelMaps, frames);
        if (deferred)
        {
            var k = s.DeferredResolution == PerfDeferredResolution.Lost ? FrameKind.UserLost : FrameKind.DeferredCookie;
            frames[n++] = new Frame(s.Callchain[^1], k);
            return n;
        }

        const PerfSampleType DwarfBits = PerfSampleType.RegsUser | PerfSampleType.StackUser;
        if ((s.SampleType & DwarfBits) == DwarfBits && userFrames == 0)
        {
            if (_unwinder is not null && s.UserRegsAbi != 0 && !s.UserRegs.IsEmpty)
            {
                var stack = new CapturedUserStack(_session.UnwindArch, s.UserRegsAbi, s.Event.Attr.SampleRegsUser, s.UserRegs, s.UserStackValid);
                var maps = Processes.MapsOf(s.Pid) ?? _noMaps;
                var dest = frames.Slice(n, Math.Min(MaxUnwoundFrames, frames.Length - n));
                int got = _unwinder.Unwind(stack, maps, dest, out _);
                n += Math.Clamp(got, 0, dest.Length);
            }
            else if (s.CpuMode == PerfRecordMisc.User && (s.SampleType & PerfSampleType.Ip) != 0)
            {
                frames[n++] = new Frame(s.Ip, FrameKind.User, user.Find(s.Ip));
            }
            return n;
        }
        if (n == 0 && (s.SampleType & PerfSampleType.Ip) != 0)
        {
            // No callchain (or an empty one): the sampled ip, in the mode the sample was taken in.
            var k = s.CpuMode switch
            {
                PerfRecordMisc.Kernel => FrameKind.Kernel,
                PerfRecordMisc.Hypervisor => FrameKind.Hypervisor,
                PerfRecordMisc.GuestKernel => FrameKind.GuestKernel,
                PerfRecordMisc.GuestUser => FrameKind.GuestUser,
                _ => FrameKind.User,
            };
            Mapping? m = k == FrameKind.Kernel ? kernelMaps.Find(s.Ip) : k == FrameKind.User ? user.Find(s.Ip) : null;
            frames[n++] = new Frame(s.Ip, k, m);
        }
        return n;
    }

    /// <summary>
    /// Frames for the callchain words <paramref name="cc"/> (markers and addresses) at <paramref name="n"/> of <paramref name="frames"/>;
    /// <paramref name="kind"/> and <paramref name="first"/> carry on from the words before.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void AddChain(ReadOnlySpan<ulong> cc, in PerfSample s, ref FrameKind kind, ref bool first, ref int n, ref int userFrames,
        UserMaps user, AddressSpace kernelMaps, Span<Frame> frames)
    {
        int end = cc.Length;
        for (int i = 0; i < end; i++)
        {
            ulong ip = cc[i];
            if (ip >= PerfContext.Max)
            {
                switch (ip)
                {
                    case PerfContext.Kernel: kind = FrameKind.Kernel; break;
                    case PerfContext.User: kind = FrameKind.User; break;
                    case PerfContext.Hv: kind = FrameKind.Hypervisor; break;
                    case PerfContext.Guest or PerfContext.GuestKernel: kind = FrameKind.GuestKernel; break;
                    case PerfContext.GuestUser: kind = FrameKind.GuestUser; break;
                    case PerfContext.UserDeferred when s.DeferredResolution == PerfDeferredResolution.Joined:
                        // perf's merged form: the deferred user ips follow (add_callchain_ip treats it as USER).
                        kind = FrameKind.User;
                        break;
                    case PerfContext.UserDeferred:
                        // A marker not in the last-but-one place: its cookie is the next word; skip both.
                        i++;
                        CountOdd(s.Record.FileOffset, ip, "PERF_CONTEXT_USER_DEFERRED before the end of the callchain");
                        break;
                    default:
                        CountOdd(s.Record.FileOffset, ip, "unknown callchain context");
                        break;
                }
                first = true;
                continue;
            }
            // A run of addresses in one context: the first is the interrupted ip, the rest return addresses.
            int j = i + 1;
            while (j < end && cc[j] < PerfContext.Max) j++;
            var run = cc[i..j];
            if (kind == FrameKind.User)
            {
                AddRun(run, kind, first, user.Current, user.BeforeExec, frames[n..]);
                userFrames += run.Length;
            }
            else AddRun(run, kind, first, kind == FrameKind.Kernel ? kernelMaps : null, null, frames[n..]);
            // (Hypervisor and guest addresses get no mapping.)
            n += run.Length;
            first = false;
            i = j - 1;
        }
    }

    /// <summary>
    /// Frames for <paramref name="ips"/> (no markers among them) at the start of <paramref name="destination"/>, named from
    /// <paramref name="maps"/>, then <paramref name="fallback"/> (a process's maps from before its exec).
    /// </summary>
    private static void AddRun(ReadOnlySpan<ulong> ips, FrameKind kind, bool first, AddressSpace? maps, AddressSpace? fallback, Span<Frame> destination)
    {
        var frames = destination[..ips.Length];
        for (int k = 0; k < ips.Length; k++)
        {
            ulong ip = ips[k];
            var m = maps?.Find(ip) ?? fallback?.Find(ip);
            frames[k] = new Frame(ip, kind, m, first && k == 0 ? FrameFlags.None : FrameFlags.ReturnAddress);
        }
    }

    /// <summary>Counts a callchain word in the marker range that is no valid marker here (formats a message only for the kept examples).</summary>
    private void CountOdd(long fileOffset, ulong word, string what)
    {
        const string Code = "perf.callchain.odd-context";
        if (_tally.WantsExample(Code))
            _tally.Add(Code, new InputPosition(_session.SourceName, fileOffset), $"{what} 0x{word:x}: skipped (perf drops the whole chain)", TallySeverity.Notice);
        else _tally.Count(Code);
    }
}
