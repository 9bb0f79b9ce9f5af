namespace TraceUnwind.Diagnostics;

/// <summary>How serious a counted condition is.</summary>
public enum TallySeverity : byte
{
    /// <summary>Something in the input was damaged and skipped (a record, a line, a section).</summary>
    Error,
    /// <summary>Nothing is wrong with the input, but something was not shown as asked
    /// (an unknown record type skipped by its size, a deferred user stack that never arrived).</summary>
    Notice,
}

/// <summary>
/// Counts skipped and damaged input by a stable code (<c>perf.record.truncated</c>,
/// <c>ftrace.line.too-long</c>, ...), keeps the first few examples of each with their position,
/// and prints a summary at the end of a run. Formatting a message costs a string, so callers
/// ask <see cref="WantsExample"/> first on hot paths (LibObjectFile's DiagnosticBag is the model,
/// without a string per occurrence).
/// </summary>
public sealed class ErrorTally
{
    /// <summary>Examples kept per code.</summary>
    public const int ExamplesPerCode = 3;

    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly List<string> _order = new();

    private sealed class Entry(TallySeverity severity)
    {
        public readonly TallySeverity Severity = severity;
        public long Count;
        public readonly List<string> Examples = new(ExamplesPerCode);
    }

    /// <summary>Total count of <see cref="TallySeverity.Error"/> conditions.</summary>
    public long ErrorCount { get; private set; }

    /// <summary>Total count of <see cref="TallySeverity.Notice"/> conditions.</summary>
    public long NoticeCount { get; private set; }

    /// <summary>True when nothing at all was counted.</summary>
    public bool IsEmpty => _order.Count == 0;

    /// <summary>Counts of every code seen, in first-seen order.</summary>
    public IEnumerable<(string Code, TallySeverity Severity, long Count)> Counts =>
        _order.Select(c => (c, _entries[c].Severity, _entries[c].Count));

    /// <summary>How often <paramref name="code"/> was counted.</summary>
    public long CountOf(string code) => _entries.TryGetValue(code, out var e) ? e.Count : 0;

    /// <summary>The examples kept for <paramref name="code"/>.</summary>
    public IReadOnlyList<string> ExamplesOf(string code) =>
        _entries.TryGetValue(code, out var e) ? e.Examples : Array.Empty<string>();

    /// <summary>True when an example for <paramref name="code"/> would still be kept: format the message only then.</summary>
    public bool WantsExample(string code) =>
        !_entries.TryGetValue(code, out var e) || e.Examples.Count < ExamplesPerCode;

    /// <summary>Counts one occurrence, keeping <paramref name="message"/> (with its position) as an example if there is room.</summary>
    public void Add(string code, InputPosition position, string? message, TallySeverity severity = TallySeverity.Error) =>
        Add(code, 1, position, message, severity);

    /// <summary>Counts <paramref name="count"/> occurrences at once.</summary>
    public void Add(string code, long count, InputPosition position, string? message, TallySeverity severity = TallySeverity.Error)
    {
        if (count <= 0) return;
        var e = GetEntry(code, severity);
        e.Count += count;
        if (e.Severity == TallySeverity.Error) ErrorCount += count; else NoticeCount += count;
        if (message is not null && e.Examples.Count < ExamplesPerCode)
            e.Examples.Add($"{position}: {message}");
    }

    /// <summary>Counts occurrences without an example (no position, no allocation after the first).</summary>
    public void Count(string code, long count = 1, TallySeverity severity = TallySeverity.Notice)
    {
        if (count <= 0) return;
        var e = GetEntry(code, severity);
        e.Count += count;
        if (e.Severity == TallySeverity.Error) ErrorCount += count; else NoticeCount += count;
    }

    private Entry GetEntry(string code, TallySeverity severity)
    {
        if (!_entries.TryGetValue(code, out var e))
        {
            e = new Entry(severity);
            _entries.Add(code, e);
            _order.Add(code);
        }
        return e;
    }

    /// <summary>
    /// Writes one line per code (<c>traceunwind: 3 x perf.record.truncated (skipped)</c>) followed by
    /// its examples, indented. Writes nothing when the tally is empty.
    /// </summary>
    public void WriteSummary(TextWriter writer, string tool = "traceunwind")
    {
        foreach (var code in _order)
        {
            var e = _entries[code];
            string what = e.Severity == TallySeverity.Error ? "skipped" : "note";
            writer.WriteLine($"{tool}: {e.Count} x {code} ({what})");
            foreach (var ex in e.Examples)
                writer.WriteLine($"{tool}:   {ex}");
            if (e.Count > e.Examples.Count && e.Examples.Count > 0)
                writer.WriteLine($"{tool}:   ... and {e.Count - e.Examples.Count} more");
        }
    }
}
