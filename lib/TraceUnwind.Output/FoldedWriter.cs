using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using TraceUnwind.Model;
using TraceUnwind.Output.Internal;
using TraceUnwind.Symbols;

namespace TraceUnwind.Output;

/// <summary>Options of <see cref="FoldedWriter"/>; the defaults match <c>perf script | stackcollapse-perf.pl</c>.</summary>
public sealed record FoldedOptions
{
    /// <summary><c>--pid</c>: the first field is <c>comm-PID</c> (stackcollapse-perf.pl <c>--pid</c>).</summary>
    public bool IncludePid { get; init; }

    /// <summary><c>--tid</c>: the first field is <c>comm-PID/TID</c> (stackcollapse-perf.pl <c>--tid</c>; wins over <see cref="IncludePid"/>).</summary>
    public bool IncludeTid { get; init; }

    /// <summary>Append <c>_[k]</c> to kernel frames, as stackcollapse-perf.pl <c>--kernel</c> does (flamegraph.pl colours them). Off by default, as there.</summary>
    public bool AnnotateKernel { get; init; }

    /// <summary>Count samples (default, as stackcollapse) or sum periods.</summary>
    public SampleWeight Weight { get; init; } = SampleWeight.Samples;

    /// <summary>How frames without a symbol are named (default <c>path[+0xOFF]</c>).</summary>
    public FrameNameStyle NameStyle { get; init; } = FrameNameStyle.UserObj;

    /// <summary>
    /// stackcollapse-perf.pl's <c>tidy_generic</c> on symbol names (default on): <c>;</c> becomes <c>:</c>,
    /// everything from the first <c>(</c> is cut (except <c>(anonymous namespace)</c> and Go's <c>pkg.(*T).M</c>),
    /// <c>"</c> and <c>'</c> are removed. Off, only <c>;</c> is replaced (it separates frames).
    /// </summary>
    public bool TidyNames { get; init; } = true;

    /// <summary>Only samples of this event (for example <c>cpu-clock</c>); null = all events.</summary>
    public string? EventFilter { get; init; }
}

/// <summary>
/// Brendan Gregg's folded stacks (<c>fold</c>): one line per distinct stack,
/// <c>comm;outermost;...;innermost count</c>, sorted bytewise like stackcollapse-perf.pl's
/// <c>sort { $a cmp $b }</c>, written by <see cref="Complete"/> (a sum is only complete at the end;
/// <see cref="Flush"/> writes nothing).
/// <para>
/// Names: the symbol when the symbolizer knows it, else <see cref="FoldedOptions.NameStyle"/>
/// (<c>path[+0xOFF]</c> by default; stackcollapse's <c>[libc.so.6]</c> with <see cref="FrameNameStyle.ModuleName"/>).
/// A lost deferred user stack is the frame <c>[deferred user stack lost]</c>. Cookie frames
/// (<c>--no-merge</c>) are skipped, as stackcollapse skips perf's <c>(cookie)</c> lines, and
/// <see cref="SampleKind.DeferredCallchain"/> records are not samples and are not counted.
/// A sample without frames counts as the line <c>comm N</c>, as in stackcollapse.
/// Spaces in comm become <c>_</c>; an unknown pid is written <c>?</c> (stackcollapse's form).
/// </para>
/// <para>
/// Memory: one entry per distinct stack and per distinct frame (frames are keyed by value, so no
/// mapping or process is kept alive). On the hot path a sample whose frames were all seen before
/// costs one table probe per frame and a hash of its id sequence, no allocation. <see cref="Complete"/>
/// sorts the stacks by their names' ranks without rendering them, then writes each line once.
/// </para>
/// </summary>
public sealed class FoldedWriter : ISampleSink
{
    private readonly Utf8Output _out;
    private readonly FoldedOptions _options;
    private readonly FrameNamer _namer;
    private readonly FrameNameCache _frames;
    private readonly NameTable _comms = new();
    private readonly StackTable _stacks = new();
    private int[] _sequence = new int[256];
    private byte[] _commScratch = new byte[128];
    private readonly CommSlot[] _commCache = new CommSlot[256];
    private bool _completed;

    // The comm id of a thread's last sample (comm strings are interned by the front ends, so a
    // reference check finds a repeat); direct-mapped by tid.
    private struct CommSlot
    {
        public string? Comm;
        public int Pid, Tid, Id;
    }

    /// <param name="output">Receives UTF-8 text; not closed by the writer.</param>
    /// <param name="symbolizer">Names frames; null = addresses and <c>path[+0xOFF]</c> only.</param>
    /// <param name="options">null = defaults.</param>
    public FoldedWriter(Stream output, ISymbolizer? symbolizer = null, FoldedOptions? options = null)
    {
        _out = new Utf8Output(output);
        _options = options ?? new FoldedOptions();
        _namer = new FrameNamer(symbolizer);
        _frames = new FrameNameCache(RenderFrame);
    }

    /// <summary>Samples counted so far.</summary>
    public long Samples { get; private set; }

    /// <summary>Distinct stacks (lines) so far.</summary>
    public int DistinctStacks => _stacks.Count;

    public void OnSample(in Sample sample)
    {
        if (_completed) throw new InvalidOperationException("the writer is complete");
        if (sample.Kind != SampleKind.Event) return;
        if (_options.EventFilter is { } ev && !string.Equals(ev, sample.Event, StringComparison.Ordinal)) return;
        var frames = sample.Frames;
        if (_sequence.Length < frames.Length + 1) _sequence = new int[Math.Max(frames.Length + 1, _sequence.Length * 2)];
        int n = 0;
        _sequence[n++] = CommId(sample);
        n += _frames.GetIdsOutermostFirst(frames, _sequence.AsSpan(1));
        _stacks.Add(_sequence.AsSpan(0, n), sample.Period);
        Samples++;
    }

    /// <summary>Nothing is complete before the end: writes nothing (and flushes the stream).</summary>
    public void Flush() => _out.Flush();

    /// <summary>Writes every line, sorted, and flushes. Later calls do nothing.</summary>
    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        // Lines are sorted bytewise without rendering them: two stacks compare at their first
        // different name, by the names' ranks (see LineOrder); each line is formatted once, at output.
        var order = new int[_stacks.Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        IntSort.Sort(order, new LineOrder(_stacks, new NameOrder(_comms), new NameOrder(_frames.Names)));
        WriteLines(order);
        _out.Flush();
        _out.Release();
    }

    /// <summary>
    /// Writes the lines in <paramref name="order"/>. Sorted lines share long beginnings (the outer
    /// frames), so each line is rendered into the previous one's buffer from the first element that
    /// differs, and goes to the output in one copy.
    /// </summary>
    private void WriteLines(int[] order)
    {
        var names = _frames.Names;
        var o = _out;
        byte[] line = new byte[4096];
        int[] ends = new int[256];   // ends[k]: where element k of the previous line ends in `line`
        ReadOnlySpan<int> prev = default;
        foreach (int e in order)
        {
            var seq = _stacks[e];
            int k = prev.CommonPrefixLength(seq);
            int length = k == 0 ? 0 : ends[k - 1];
            if (ends.Length < seq.Length) Array.Resize(ref ends, Math.Max(seq.Length, ends.Length * 2));
            for (int i = k; i < seq.Length; i++)
            {
                var name = i == 0 ? _comms[seq[0]] : names[seq[i]];
                int need = length + 1 + name.Length + 24;
                if (line.Length < need) Array.Resize(ref line, Math.Max(need, line.Length * 2));
                if (i > 0) line[length++] = (byte)';';
                name.CopyTo(line.AsSpan(length));
                length += name.Length;
                ends[i] = length;
            }
            line[length] = (byte)' ';
            int n;
            var count = line.AsSpan(length + 1);
            if (_options.Weight == SampleWeight.Period) System.Buffers.Text.Utf8Formatter.TryFormat(_stacks.Period(e), count, out n);
            else System.Buffers.Text.Utf8Formatter.TryFormat(_stacks.Samples(e), count, out n);
            line[length + 1 + n] = (byte)'\n';
            o.Write(line.AsSpan(0, length + 2 + n));
            o.DrainIfOver();
            prev = seq;
        }
    }

    /// <summary>
    /// The bytewise order of names (NUL-free UTF-8 without <c>;</c>): each name's rank, and for each
    /// name the last rank of the names it is a prefix of (they follow it as one block).
    /// </summary>
    private sealed class NameOrder
    {
        public readonly NameTable Names;
        public readonly int[] Rank;
        public readonly int[] PrefixBlockEnd;

        private readonly struct ByBytes(NameTable names) : IntSort.IComparer
        {
            public int Compare(int a, int b) => names[a].SequenceCompareTo(names[b]);
        }

        public NameOrder(NameTable names)
        {
            Names = names;
            int n = names.Count;
            var sorted = new int[n];
            for (int i = 0; i < n; i++) sorted[i] = i;
            IntSort.Sort(sorted, new ByBytes(names));
            Rank = new int[n];
            PrefixBlockEnd = new int[n];
            var stack = new Stack<int>();
            for (int r = 0; r < n; r++)
            {
                int id = sorted[r];
                Rank[id] = r;
                var name = names[id];
                while (stack.Count > 0 && !name.StartsWith(names[stack.Peek()])) PrefixBlockEnd[stack.Pop()] = r - 1;
                stack.Push(id);
            }
            while (stack.Count > 0) PrefixBlockEnd[stack.Pop()] = n - 1;
        }

        /// <summary>
        /// Orders the rest of two lines that differ first at names <paramref name="x"/> and <paramref name="y"/>
        /// (x != y), each followed by <c>;</c> when the line goes on (<paramref name="xMore"/>) or by its end.
        /// </summary>
        public int Compare(int x, bool xMore, int y, bool yMore)
        {
            int rx = Rank[x], ry = Rank[y];
            if (rx < ry)
            {
                if (ry > PrefixBlockEnd[x]) return -1; // differ inside both names
                // x is a proper prefix of y: x's line goes on with ';' (or ends), y's with its next byte.
                return xMore ? ((byte)';').CompareTo(Names[y][Names[x].Length]) : -1;
            }
            if (rx > PrefixBlockEnd[y]) return 1;
            return yMore ? Names[x][Names[y].Length].CompareTo((byte)';') : 1;
        }
    }

    /// <summary>Bytewise order of the lines <c>comm;name;...;name</c> of two stack entries, without rendering them.</summary>
    private readonly struct LineOrder(StackTable stacks, NameOrder comms, NameOrder frames) : IntSort.IComparer
    {
        public int Compare(int a, int b)
        {
            if (a == b) return 0;
            var sa = stacks[a];
            var sb = stacks[b];
            int k = sa.CommonPrefixLength(sb);
            if (k == sa.Length || k == sb.Length) return sa.Length.CompareTo(sb.Length); // one line is a prefix of the other
            return (k == 0 ? comms : frames).Compare(sa[k], k + 1 < sa.Length, sb[k], k + 1 < sb.Length);
        }
    }

    // comm (spaces -> '_', ';' -> ':') [+ "-PID" [+ "/TID"]], interned.
    private int CommId(in Sample sample)
    {
        string comm = sample.Comm ?? "";
        ref var slot = ref _commCache[sample.Tid & (_commCache.Length - 1)];
        if (ReferenceEquals(slot.Comm, comm) && slot.Pid == sample.Pid && slot.Tid == sample.Tid) return slot.Id;
        int id = CommIdSlow(comm, sample.Pid, sample.Tid);
        slot.Comm = comm;
        slot.Pid = sample.Pid;
        slot.Tid = sample.Tid;
        slot.Id = id;
        return id;
    }

    private int CommIdSlow(string comm, int pid, int tid)
    {
        int max = Encoding.UTF8.GetMaxByteCount(comm.Length) + 24;
        if (_commScratch.Length < max) _commScratch = new byte[max];
        var span = _commScratch.AsSpan();
        int n = Encoding.UTF8.GetBytes(comm, span);
        for (int i = 0; i < n; i++)
        {
            if (span[i] == (byte)' ') span[i] = (byte)'_';
            else if (span[i] == (byte)';') span[i] = (byte)':';
        }
        if (_options.IncludeTid || _options.IncludePid)
        {
            span[n++] = (byte)'-';
            n += FormatId(span[n..], pid);
            if (_options.IncludeTid)
            {
                span[n++] = (byte)'/';
                n += FormatId(span[n..], tid);
            }
        }
        return _comms.Intern(span[..n]);
    }

    private static int FormatId(Span<byte> span, int id)
    {
        if (id < 0)
        {
            span[0] = (byte)'?';
            return 1;
        }
        System.Buffers.Text.Utf8Formatter.TryFormat(id, span, out int n);
        return n;
    }

    private void RenderFrame(in Frame frame, ArrayBufferWriter<byte> destination)
    {
        bool symbol = frame.Kind is not (FrameKind.UserLost or FrameKind.DeferredCookie) && _namer.TryResolve(frame, out _);
        bool tidy = _options.TidyNames && (symbol || _options.NameStyle == FrameNameStyle.ModuleName);
        bool kernel = _options.AnnotateKernel && frame.Kind is FrameKind.Kernel or FrameKind.GuestKernel;
        if (kernel && !symbol && _options.NameStyle == FrameNameStyle.ModuleName)
            // stackcollapse appends _[k] before replacing [unknown] by the module, so the
            // replacement no longer matches: an unsymbolized kernel frame stays [unknown]_[k].
            destination.Write("[unknown]"u8);
        else
            _namer.WriteName(destination, frame, _options.NameStyle);
        // Tidy in place: the scratch buffer is ours, so its written bytes may be rewritten.
        var written = destination.WrittenSpan;
        var writable = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(written), written.Length);
        int length = Tidy(writable, tidy);
        destination.ResetWrittenCount(); // keeps the bytes
        destination.Advance(length);
        if (kernel) destination.Write("_[k]"u8);
    }

    /// <summary>
    /// stackcollapse-perf.pl tidy_generic, in place; returns the new length:
    /// <code>
    /// $func =~ s/;/:/g;
    /// if ($func !~ m/\.\(.*\)\./) { $func =~ s/\((?!anonymous namespace\)).*//; }
    /// $func =~ tr/"\'//d;
    /// </code>
    /// With <paramref name="full"/> false only the first step runs (names that are paths).
    /// </summary>
    internal static int Tidy(Span<byte> name, bool full)
    {
        for (int i = 0; i < name.Length; i++)
            if (name[i] == (byte)';') name[i] = (byte)':';
        if (!full) return name.Length;
        int length = name.Length;
        int goOpen = name.IndexOf(".("u8);
        bool goMethod = goOpen >= 0 && name[(goOpen + 2)..].IndexOf(")."u8) >= 0;
        if (!goMethod)
        {
            for (int i = 0; i < length; i++)
            {
                if (name[i] != (byte)'(') continue;
                if (name[(i + 1)..length].StartsWith("anonymous namespace)"u8)) continue;
                length = i;
                break;
            }
        }
        int w = 0;
        for (int r = 0; r < length; r++)
        {
            byte b = name[r];
            if (b is (byte)'"' or (byte)'\'') continue;
            name[w++] = b;
        }
        return w;
    }
}
