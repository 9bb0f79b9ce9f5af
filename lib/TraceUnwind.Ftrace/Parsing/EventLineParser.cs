using System.Runtime.CompilerServices;

namespace TraceUnwind.Ftrace.Parsing;

/// <summary>
/// Parses the context prefix of an ftrace or <c>trace-cmd report</c> event line. Stateless; no
/// allocation. Formats (kernel/trace/trace_output.c; widths are the 6.x ones, older kernels
/// printed narrower pid/tgid fields and 4 flag columns, which parse the same way):
/// <code>
/// trace_print_context:   "%16s-%-7d " ["(%7d) " | "(-------) "] "[%03d] " [FLAGS " "] " %5lu.%06lu: "   (ns clocks)
///                                                                           " %12llu: "         (counter, uptime, x86-tsc)
///        probe_helper-17008   (  17008) [000] DBZff  3675.856543: helper_f3: (0x55e6dcd0f21e)
/// trace-cmd report:      "tu_tc:               sh-13700 [001]  3170.087850: user_stack:           \t=> 0x7f224749f353"
/// lat_print_generic:     "%8.8s-%-7d %3d" FLAGS " %4lldus%c: "
///                        "probe_he-17008     0..... 3675856110us : sched_process_exec: ..."
/// trace-cmd report -l:   "tu_tc:       sh-13700   1.....  3170.087850: ..."
/// verbose latency:       "%16s %7d %3d %d %08x %08lx [%08llx] %ld.%03ldms (+%ld.%03ldms): "
/// raw option:            "%d %d %llu " + "type: %d"
/// </code>
/// The comm is free text (spaces, '-', digits, brackets: <c>mt prog-12537</c>,
/// <c>kworker/1:1-41</c>), so the pid is found as the '-' followed by digits after which the
/// rest of the context parses, trying each '-' from the left; the event text is everything
/// after the timestamp's <c>": "</c>.
/// </summary>
public static class EventLineParser
{
    /// <summary>The width of the kernel's right-aligned comm column (<c>%16s</c>).</summary>
    private const int CommWidth = 16;
    /// <summary>latency-format's comm column (<c>%8.8s</c>).</summary>
    private const int LatencyCommWidth = 8;

    /// <summary>Parses an event line with a context prefix. False for anything else (frame, header, LOST, free text).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryParse(ReadOnlySpan<byte> line, out EventLine ev)
    {
        ev = default;
        if (line.IsEmpty || line[0] == (byte)'#') return false;
        int from = 0;
        while (true)
        {
            int rel = line[from..].IndexOf((byte)'-');
            if (rel < 0) break;
            int dash = from + rel;
            from = dash + 1;
            if (TryParseAfterDash(line, dash, ref ev)) return true;
        }
        if (TryParseVerbose(line, ref ev)) return true;
        return TryParseRaw(line, ref ev);
    }

    /// <summary>An event line printed with context-info off: the text alone, nothing else known.</summary>
    public static EventLine NoContext(ReadOnlySpan<byte> line) => new()
    {
        Layout = EventLayout.NoContext, Pid = -1, Tgid = -1, Cpu = -1, Text = line, TextStart = 0,
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool TryParseAfterDash(ReadOnlySpan<byte> line, int dash, ref EventLine ev)
    {
        int p = dash + 1;
        if (!TryTakeInt(line, ref p, out int pid)) return false;
        int q = SkipSpaces(line, p);
        if (q == p || q >= line.Length) return false;
        int tgid = -1;
        if (line[q] == (byte)'(')
        {
            // "(%7d) " or "(-------) " (saved_tgids had no entry).
            int close = line[q..].IndexOf((byte)')');
            if (close < 0) return false;
            close += q;
            var inner = line[(q + 1)..close].Trim((byte)' ');
            if (inner.IsEmpty) return false;
            if (inner.IndexOfAnyExcept((byte)'-') >= 0 && !TryParseInt(inner, out tgid)) return false;
            q = close + 1;
            int r = SkipSpaces(line, q);
            if (r == q || r >= line.Length || line[r] != (byte)'[') return false;
            q = r;
        }

        int cpu, textStart;
        TraceTimestamp ts;
        ReadOnlySpan<byte> flags = default;
        EventLayout layout;
        if (line[q] == (byte)'[')
        {
            layout = EventLayout.Context;
            int r = q + 1;
            if (!TryTakeInt(line, ref r, out cpu) || r >= line.Length || line[r] != (byte)']') return false;
            r++;
            int s = SkipSpaces(line, r);
            if (s == r || s >= line.Length) return false;
            if (!IsDigit(line[s]))
            {
                // irq-info flags: 4-5 arbitrary non-space characters ("d..2.", "DBZff"); never a leading digit.
                int e = line[s..].IndexOf((byte)' ');
                if (e <= 0) return false;
                flags = line.Slice(s, e);
                r = s + e;
                s = SkipSpaces(line, r);
                if (s == r) return false;
            }
            if (!TryTakeTimestamp(line, ref s, out ts) || s >= line.Length || line[s] != (byte)':') return false;
            if (!TryTextStart(line, s + 1, out textStart)) return false;
        }
        else if (IsDigit(line[q]))
        {
            // latency: "%3d" cpu immediately followed by the flags ("0.....", "1d..2.").
            layout = EventLayout.Latency;
            int r = q;
            if (!TryTakeInt(line, ref r, out cpu) || r >= line.Length || IsDigit(line[r]) || line[r] == (byte)' ') return false;
            int e = line[r..].IndexOf((byte)' ');
            if (e <= 0) return false;
            flags = line.Slice(r, e);
            r += e;
            int s = SkipSpaces(line, r);
            if (s == r || s >= line.Length) return false;
            int t0 = s;
            while (s < line.Length && (IsDigit(line[s]) || line[s] == (byte)'.')) s++;
            if (s == t0) return false;
            if (s + 1 < line.Length && line[s] == (byte)'u' && line[s + 1] == (byte)'s')
            {
                // " %4lldus%c: ": µs since boot (the trace clock), then a delay mark char ('!', '+', ' ', ...).
                if (!TryParseUInt64(line[t0..s], out ulong us) || us > ulong.MaxValue / 1000) return false;
                ts = new TraceTimestamp(us * 1000, TimestampKind.Nanoseconds);
                s += 3;
                if (s >= line.Length || line[s] != (byte)':') return false;
            }
            else
            {
                // trace-cmd report -l keeps the secs.usecs timestamp.
                if (!TraceTimestamp.TryParse(line[t0..s], out ts) || s >= line.Length || line[s] != (byte)':') return false;
            }
            if (!TryTextStart(line, s + 1, out textStart)) return false;
        }
        else
        {
            return false;
        }

        var region = line[..dash].TrimStart((byte)' ');
        ReadOnlySpan<byte> buffer = default;
        if (dash > (layout == EventLayout.Latency ? LatencyCommWidth : CommWidth))
        {
            // trace-cmd prefixes instance buffers: "tu_tc: " + "%16s" ("%8.8s" with -l); the
            // kernel's comm column is exactly that wide, so a wider region holds a prefix.
            int k = region.IndexOf(": "u8);
            if (k > 0)
            {
                buffer = region[..k];
                region = region[(k + 2)..].TrimStart((byte)' ');
            }
        }
        ev.Layout = layout;
        ev.Buffer = buffer;
        ev.Comm = region;
        ev.Pid = pid;
        ev.Tgid = tgid;
        ev.Cpu = cpu;
        ev.Flags = flags;
        ev.Timestamp = ts;
        ev.TextStart = textStart;
        ev.Text = line[textStart..];
        return true;
    }

    /// <summary>verbose latency: <c>"%16s %7d %3d %d %08x %08lx [%08llx] %ld.%03ldms (+%ld.%03ldms): "</c>.</summary>
    private static bool TryParseVerbose(ReadOnlySpan<byte> line, ref EventLine ev)
    {
        int ms = line.IndexOf("ms (+"u8);
        if (ms < 0) return false;
        int end = line[ms..].IndexOf("ms): "u8);
        if (end < 0) return false;
        int textStart = ms + end + 5;
        // Timestamp: MSECS.USECS ending at ms.
        int t0 = ms;
        while (t0 > 0 && (IsDigit(line[t0 - 1]) || line[t0 - 1] == (byte)'.')) t0--;
        if (t0 == ms || !TraceTimestamp.TryParseDecimal(line[t0..ms], out ulong msWhole, out ulong frac9, out _)) return false;
        if (!TraceTimestamp.TryScale(msWhole, 1_000_000, frac9 / 1000, out ulong ns)) return false;
        int pos = t0;
        if (!TakeTokenBack(line, ref pos, out var absTs) || absTs.Length < 3 || absTs[0] != (byte)'[' || absTs[^1] != (byte)']') return false;
        if (!TakeTokenBack(line, ref pos, out _)) return false;        // idx
        if (!TakeTokenBack(line, ref pos, out _)) return false;        // preempt count
        if (!TakeTokenBack(line, ref pos, out var flags)) return false;
        if (!TakeTokenBack(line, ref pos, out var cpuText) || !TryParseInt(cpuText, out int cpu)) return false;
        if (!TakeTokenBack(line, ref pos, out var pidText) || !TryParseInt(pidText, out int pid)) return false;
        ev.Layout = EventLayout.LatencyVerbose;
        ev.Buffer = default;
        ev.Comm = line[..pos].Trim((byte)' ');
        ev.Pid = pid;
        ev.Tgid = -1;
        ev.Cpu = cpu;
        ev.Flags = flags;
        ev.Timestamp = new TraceTimestamp(ns, TimestampKind.Nanoseconds);
        ev.TextStart = textStart;
        ev.Text = line[textStart..];
        return true;
    }

    /// <summary>The raw option: <c>"%d %d %llu "</c> (pid, cpu, ns) then the text (<c>type: 13</c>).</summary>
    private static bool TryParseRaw(ReadOnlySpan<byte> line, ref EventLine ev)
    {
        int p = 0;
        if (!TryTakeInt(line, ref p, out int pid) || p >= line.Length || line[p] != (byte)' ') return false;
        p++;
        if (!TryTakeInt(line, ref p, out int cpu) || p >= line.Length || line[p] != (byte)' ') return false;
        p++;
        int t0 = p;
        while (p < line.Length && IsDigit(line[p])) p++;
        if (p == t0 || p >= line.Length || line[p] != (byte)' ' || !TryParseUInt64(line[t0..p], out ulong ns)) return false;
        p++;
        ev.Layout = EventLayout.Raw;
        ev.Buffer = default;
        ev.Comm = default;
        ev.Pid = pid;
        ev.Tgid = -1;
        ev.Cpu = cpu;
        ev.Flags = default;
        ev.Timestamp = new TraceTimestamp(ns, TimestampKind.Nanoseconds);
        ev.TextStart = p;
        ev.Text = line[p..];
        return true;
    }

    // After the timestamp's ':' comes ' ' and the text, or the end of the line (empty text).
    private static bool TryTextStart(ReadOnlySpan<byte> line, int afterColon, out int textStart)
    {
        textStart = afterColon;
        if (afterColon == line.Length) return true;
        if (line[afterColon] != (byte)' ') return false;
        textStart = afterColon + 1;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool TryTakeTimestamp(ReadOnlySpan<byte> line, ref int pos, out TraceTimestamp ts)
    {
        int t0 = pos;
        while (pos < line.Length && (IsDigit(line[pos]) || line[pos] == (byte)'.')) pos++;
        if (pos == t0) { ts = default; return false; }
        return TraceTimestamp.TryParse(line[t0..pos], out ts);
    }

    private static bool TakeTokenBack(ReadOnlySpan<byte> line, scoped ref int pos, out ReadOnlySpan<byte> token)
    {
        int e = pos;
        while (e > 0 && line[e - 1] == (byte)' ') e--;
        int s = e;
        while (s > 0 && line[s - 1] != (byte)' ') s--;
        token = line[s..e];
        pos = s;
        return s < e;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool IsDigit(byte b) => (uint)(b - '0') <= 9;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int SkipSpaces(ReadOnlySpan<byte> s, int i)
    {
        while (i < s.Length && s[i] == (byte)' ') i++;
        return i;
    }

    /// <summary>Takes 1-10 decimal digits at <paramref name="pos"/> as a non-negative int.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool TryTakeInt(ReadOnlySpan<byte> s, ref int pos, out int value)
    {
        value = 0;
        int start = pos;
        long v = 0;
        while (pos < s.Length && IsDigit(s[pos]))
        {
            v = v * 10 + (s[pos] - '0');
            if (v > int.MaxValue) return false;
            pos++;
        }
        if (pos == start) return false;
        value = (int)v;
        return true;
    }

    internal static bool TryParseInt(ReadOnlySpan<byte> s, out int value)
    {
        int p = 0;
        return TryTakeInt(s, ref p, out value) && p == s.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool TryParseUInt64(ReadOnlySpan<byte> s, out ulong value)
    {
        value = 0;
        if (s.IsEmpty || s.Length > 20) return false;
        foreach (byte b in s)
        {
            uint d = (uint)(b - '0');
            if (d > 9 || value > (ulong.MaxValue - d) / 10) return false;
            value = value * 10 + d;
        }
        return true;
    }
}
