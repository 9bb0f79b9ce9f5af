namespace TraceUnwind.Diagnostics;

/// <summary>
/// Where in an input something was found: the source name (file path, or <c>-</c> / <c>stdin</c>),
/// a byte offset, and for text a 1-based line number. Unknown parts are -1.
/// </summary>
public readonly record struct InputPosition(string? Source, long ByteOffset = -1, long Line = -1)
{
    /// <summary>The same position in a named source (readers add the file name to positions that cursors produced).</summary>
    public InputPosition WithSource(string? source) => this with { Source = Source ?? source };

    public override string ToString()
    {
        string src = Source ?? "<input>";
        if (Line >= 0 && ByteOffset >= 0) return $"{src}:{Line} (byte offset {ByteOffset})";
        if (Line >= 0) return $"{src}:{Line}";
        if (ByteOffset >= 0) return $"{src}: byte offset 0x{ByteOffset:x} ({ByteOffset})";
        return src;
    }
}
