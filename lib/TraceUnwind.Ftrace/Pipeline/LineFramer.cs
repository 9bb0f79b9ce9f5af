using System.Runtime.CompilerServices;
using System.Buffers;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Ftrace.Pipeline;

/// <summary>
/// Cuts a byte stream into lines and hands them to an <see cref="ILineHandler"/>, copying every
/// byte it does not replace to the output unchanged: invalid UTF-8, <c>\r\n</c>, a missing final
/// newline and over-long lines all come out as they went in. The synchronous core of
/// <see cref="LinePipeline"/>, kept apart so tests can feed it any segmentation
/// (Kestrel <c>HttpParser</c>: a line inside one segment is a span of that segment; only a
/// line that straddles segments is copied, into a buffer of at most <see cref="MaxLineLength"/>).
/// State carried between calls: line number, byte offset, and whether an over-long line is
/// being passed through.
/// </summary>
public sealed class LineFramer
{
    /// <summary>Default cap: far above the kernel's 8 KiB <c>trace_seq</c> per event.</summary>
    public const int DefaultMaxLineLength = 64 * 1024;

    /// <summary>The <see cref="ErrorTally"/> code for lines over the cap.</summary>
    public const string LongLineCode = "ftrace.line.too-long";

    private readonly ILineHandler _handler;
    private readonly ErrorTally? _tally;
    private readonly string? _source;
    private byte[] _scratch = Array.Empty<byte>();
    private bool _inLongLine;

    public LineFramer(ILineHandler handler, int maxLineLength = DefaultMaxLineLength, ErrorTally? tally = null, string? sourceName = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineLength, 1);
        _handler = handler;
        MaxLineLength = maxLineLength;
        _tally = tally;
        _source = sourceName;
        LineNumber = 1;
    }

    public int MaxLineLength { get; }

    /// <summary>1-based number of the next line to start.</summary>
    public long LineNumber { get; private set; }

    /// <summary>Absolute offset of the first byte not consumed yet.</summary>
    public long ByteOffset { get; private set; }

    /// <summary>Lines handed to the handler or passed through as over-long.</summary>
    public long LinesSeen { get; private set; }

    /// <summary>
    /// Processes every complete line of <paramref name="buffer"/> (all of it when
    /// <paramref name="isFinal"/>: the rest is a last line without newline) and returns how far
    /// it consumed. Unconsumed bytes (a partial line) must be offered again with more data.
    /// With <paramref name="output"/> null nothing is written (scanning handlers).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public SequencePosition Process(in ReadOnlySequence<byte> buffer, bool isFinal, IBufferWriter<byte>? output)
    {
        var rest = buffer;
        while (!rest.IsEmpty)
        {
            if (_inLongLine)
            {
                // Pass the rest of an over-long line through until its newline.
                var nl = rest.PositionOf((byte)'\n');
                if (nl is null)
                {
                    Write(output, rest);
                    ByteOffset += rest.Length;
                    return rest.End;
                }
                var upTo = rest.GetPosition(1, nl.Value);
                var part = rest.Slice(0, upTo);
                Write(output, part);
                ByteOffset += part.Length;
                LineNumber++;
                _inLongLine = false;
                rest = rest.Slice(upTo);
                continue;
            }

            // Fast path: every complete line inside the first segment, unchanged ones copied in one go.
            var span = rest.FirstSpan;
            int pos = 0, copyFrom = 0;
            while (true)
            {
                int rel = span[pos..].IndexOf((byte)'\n');
                if (rel < 0) break;
                int nlIndex = pos + rel;
                var content = span[pos..nlIndex];
                if (!content.IsEmpty && content[^1] == (byte)'\r') content = content[..^1];
                var at = new LinePosition(LineNumber, ByteOffset);
                if (content.Length > MaxLineLength)
                {
                    CountLongLine(at);
                }
                else if (_handler.OnLine(content, at, out var replacement) && output is not null)
                {
                    Write(output, span[copyFrom..pos]);
                    Write(output, replacement);
                    Write(output, span[(pos + content.Length)..(nlIndex + 1)]);
                    copyFrom = nlIndex + 1;
                }
                LinesSeen++;
                LineNumber++;
                ByteOffset += nlIndex + 1 - pos;
                pos = nlIndex + 1;
            }
            Write(output, span[copyFrom..pos]);
            if (pos == span.Length)
            {
                // The first segment ended exactly at a newline (or was empty): move to the
                // next segment and scan it the fast way. (Slicing at a segment's end may or may
                // not land on the next segment's start, so step by the segment itself.)
                if (rest.IsSingleSegment)
                {
                    rest = rest.Slice(rest.End);
                    break;
                }
                var next = rest.Start;
                rest.TryGet(ref next, out _, advance: true);
                rest = rest.Slice(next);
                continue;
            }
            rest = rest.Slice(pos);

            // What is left starts with a line without a newline in this segment.
            var newline = rest.IsSingleSegment ? null : rest.PositionOf((byte)'\n');
            if (newline is null)
            {
                // Incomplete: wait for more, unless the input ended or the line is already too long.
                if (rest.Length > MaxLineLength)
                {
                    CountLongLine(new LinePosition(LineNumber, ByteOffset));
                    LinesSeen++;
                    _inLongLine = true;
                    continue;
                }
                if (!isFinal) return rest.Start;
                HandleCopiedLine(rest, rest.Length, output);
                ByteOffset += rest.Length;
                LineNumber++;
                return rest.End;
            }
            // A complete line that straddles segments.
            var lineEnd = rest.GetPosition(1, newline.Value);
            var whole = rest.Slice(0, lineEnd);
            HandleCopiedLine(whole, whole.Length - 1, output);
            ByteOffset += whole.Length;
            LineNumber++;
            rest = rest.Slice(lineEnd);
        }
        return rest.Start;
    }

    /// <summary>A line in several segments (or the final one): copied out to parse, or passed through if too long.</summary>
    private void HandleCopiedLine(in ReadOnlySequence<byte> lineWithTerminator, long contentLength, IBufferWriter<byte>? output)
    {
        var at = new LinePosition(LineNumber, ByteOffset);
        LinesSeen++;
        if (contentLength > MaxLineLength)
        {
            CountLongLine(at);
            Write(output, lineWithTerminator);
            return;
        }
        int n = (int)contentLength;
        if (_scratch.Length < n) _scratch = new byte[Math.Max(n, Math.Min(MaxLineLength, Math.Max(256, _scratch.Length * 2)))];
        var copy = _scratch.AsSpan(0, n);
        lineWithTerminator.Slice(0, n).CopyTo(copy);
        var content = copy;
        if (!content.IsEmpty && content[^1] == (byte)'\r') content = content[..^1];
        if (_handler.OnLine(content, at, out var replacement) && output is not null)
        {
            Write(output, replacement);
            Write(output, lineWithTerminator.Slice(content.Length));
        }
        else
        {
            Write(output, lineWithTerminator);
        }
    }

    private void CountLongLine(in LinePosition at)
    {
        _handler.OnLongLine(at);
        if (_tally is null) return;
        if (_tally.WantsExample(LongLineCode))
            _tally.Add(LongLineCode, new InputPosition(_source, at.ByteOffset, at.Line),
                $"line longer than {MaxLineLength} bytes passed through unchanged");
        else
            _tally.Count(LongLineCode, 1, TallySeverity.Error);
    }

    private static void Write(IBufferWriter<byte>? output, ReadOnlySpan<byte> bytes)
    {
        if (output is null || bytes.IsEmpty) return;
        output.Write(bytes);
    }

    private static void Write(IBufferWriter<byte>? output, in ReadOnlySequence<byte> bytes)
    {
        if (output is null) return;
        foreach (var m in bytes) if (!m.IsEmpty) output.Write(m.Span);
    }
}
