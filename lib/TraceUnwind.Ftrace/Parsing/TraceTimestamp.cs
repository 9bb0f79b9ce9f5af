using System.Runtime.CompilerServices;
namespace TraceUnwind.Ftrace.Parsing;

/// <summary>What unit a <see cref="TraceTimestamp"/> is in.</summary>
public enum TimestampKind : byte
{
    /// <summary>No timestamp (context-info off).</summary>
    None,
    /// <summary>
    /// Nanoseconds: the ns trace clocks (local, global, perf, mono, mono_raw, boot, tai) print
    /// <c>secs.usecs</c>; trace-cmd <c>-t</c> prints <c>secs.nsecs</c>; latency-format prints µs
    /// (<c>3675856110us</c>) and its verbose form ms (<c>3675856.110ms</c>). All scaled to ns.
    /// </summary>
    Nanoseconds,
    /// <summary>
    /// A raw count: the counter, uptime (jiffies) and x86-tsc clocks print <c>%12llu</c>
    /// (kernel/trace/trace_output.c <c>trace_print_time</c>); kept as printed.
    /// </summary>
    Counter,
}

/// <summary>An event's time in the trace's clock, in the unit <see cref="Kind"/> says.</summary>
public readonly record struct TraceTimestamp(ulong Value, TimestampKind Kind)
{
    public bool IsKnown => Kind != TimestampKind.None;

    /// <summary>
    /// Parses <c>SECONDS[.FRACTION]</c> as the trace prints it: with a fraction (1 to 9 digits)
    /// it is seconds scaled to ns; without one it is an integer clock's count.
    /// False on anything else or on overflow.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryParse(ReadOnlySpan<byte> text, out TraceTimestamp value)
    {
        value = default;
        if (!TryParseDecimal(text, out ulong whole, out ulong fracNs, out bool hasFraction)) return false;
        if (!hasFraction)
        {
            value = new TraceTimestamp(whole, TimestampKind.Counter);
            return true;
        }
        if (!TryScale(whole, 1_000_000_000UL, fracNs, out ulong ns)) return false;
        value = new TraceTimestamp(ns, TimestampKind.Nanoseconds);
        return true;
    }

    /// <summary>
    /// Parses <c>WHOLE[.FRACTION]</c> into the whole part and the fraction in units of 1e-9
    /// (<c>3151.151372</c> → 3151, 151372000). At most 9 fraction digits, at most 19 whole digits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool TryParseDecimal(ReadOnlySpan<byte> text, out ulong whole, out ulong fraction9, out bool hasFraction)
    {
        whole = 0; fraction9 = 0; hasFraction = false;
        int i = 0;
        while (i < text.Length && (uint)(text[i] - '0') <= 9)
        {
            if (i >= 19) return false;
            whole = whole * 10 + (uint)(text[i] - '0');
            i++;
        }
        if (i == 0) return false;
        if (i == text.Length) return true;
        if (text[i] != (byte)'.') return false;
        hasFraction = true;
        int digits = 0;
        for (i++; i < text.Length; i++, digits++)
        {
            uint d = (uint)(text[i] - '0');
            if (d > 9 || digits >= 9) return false;
            fraction9 = fraction9 * 10 + d;
        }
        if (digits == 0) return false;
        for (; digits < 9; digits++) fraction9 *= 10;
        return true;
    }

    /// <summary><c>whole * scale + add</c>, false on overflow.</summary>
    internal static bool TryScale(ulong whole, ulong scale, ulong add, out ulong result)
    {
        result = 0;
        if (whole > (ulong.MaxValue - add) / scale) return false;
        result = whole * scale + add;
        return true;
    }

    public override string ToString() => Kind switch
    {
        TimestampKind.Nanoseconds => $"{Value / 1_000_000_000}.{Value % 1_000_000_000:D9}",
        TimestampKind.Counter => Value.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => "-",
    };
}
