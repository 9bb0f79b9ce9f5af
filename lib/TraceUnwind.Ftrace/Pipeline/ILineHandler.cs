namespace TraceUnwind.Ftrace.Pipeline;

/// <summary>Where a line starts: 1-based line number and absolute byte offset in the input.</summary>
public readonly record struct LinePosition(long Line, long ByteOffset);

/// <summary>
/// Receives the lines a <see cref="LineFramer"/> cuts from a byte stream, in order, as spans
/// valid only during the call (Kestrel's <c>IHttpHeadersHandler</c> shape).
/// </summary>
public interface ILineHandler
{
    /// <summary>
    /// One line: <paramref name="line"/> excludes the <c>'\n'</c> and a <c>'\r'</c> before it.
    /// Return true to replace the line's content with <paramref name="replacement"/> (the line
    /// terminator is kept as it was); false leaves the line byte-identical.
    /// </summary>
    bool OnLine(ReadOnlySpan<byte> line, in LinePosition position, out ReadOnlySpan<byte> replacement);

    /// <summary>
    /// A line longer than the cap starts at <paramref name="position"/>: it passes through
    /// unparsed (its bytes are copied as they come), so any open block ends here.
    /// </summary>
    void OnLongLine(in LinePosition position);

    /// <summary>The input has nothing more buffered: output is about to be flushed (a pipe went idle).</summary>
    void OnIdle();
}

/// <summary>
/// Scans input ahead of the line handler (<see cref="LinePipeline"/>'s look-ahead): gets each
/// newly arrived run of complete lines once, in order, before any of them is handled.
/// </summary>
public interface ILookahead
{
    /// <summary><paramref name="completeLines"/> ends with a newline; <paramref name="byteOffset"/> is where it starts in the input.</summary>
    void Scan(ReadOnlySpan<byte> completeLines, long byteOffset);
}
