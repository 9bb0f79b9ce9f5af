using System.Diagnostics;
using System.Runtime.CompilerServices;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Buffers;

/// <summary>
/// A forward cursor over bytes with an absolute base offset, in the shape of
/// System.Reflection.Metadata's <c>BlobReader</c> and dnlib's <c>DataReader</c>: every read
/// is bounds-checked by one unsigned compare and a failed check throws
/// <see cref="TraceFormatException"/> naming the absolute byte offset. <see cref="BaseOffset"/>
/// is where byte 0 of the span sits in the input (file offset, section address), so
/// errors name a position a user can find with <c>xxd</c>.
/// </summary>
[DebuggerDisplay("{DebuggerDisplay,nq}")]
public ref struct SpanCursor<TOrder> where TOrder : struct, IByteOrder
{
    private readonly ReadOnlySpan<byte> _span;
    private int _position;

    public SpanCursor(ReadOnlySpan<byte> span, long baseOffset = 0)
    {
        _span = span;
        _position = 0;
        BaseOffset = baseOffset;
    }

    /// <summary>Absolute offset of byte 0 of this cursor's span.</summary>
    public long BaseOffset { get; }

    /// <summary>Bytes in the span.</summary>
    public readonly int Length => _span.Length;

    /// <summary>The whole span this cursor walks.</summary>
    public readonly ReadOnlySpan<byte> Span => _span;

    /// <summary>Position relative to the start of the span; the setter is bounds-checked.</summary>
    public int Position
    {
        readonly get => _position;
        set
        {
            if (unchecked((uint)value) > (uint)_span.Length)
                ThrowHelper.OutOfBounds(BaseOffset + _position, value - _position, _span.Length - _position);
            _position = value;
        }
    }

    /// <summary>Absolute offset of the next byte to read.</summary>
    public readonly long AbsoluteOffset => BaseOffset + _position;

    public readonly int Remaining => _span.Length - _position;

    public readonly bool IsAtEnd => _position == _span.Length;

    /// <summary>The bytes not read yet.</summary>
    public readonly ReadOnlySpan<byte> RemainingSpan => _span.Slice(_position);

    private readonly string DebuggerDisplay => $"@0x{AbsoluteOffset:x} ({Remaining} left)";

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ReadOnlySpan<byte> Take(int count)
    {
        // One unsigned compare: a negative count folds into "too large".
        if (unchecked((uint)count) > (uint)(_span.Length - _position))
            ThrowHelper.OutOfBounds(BaseOffset + _position, count, _span.Length - _position);
        var s = _span.Slice(_position, count);
        _position += count;
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte ReadByte() => Take(1)[0];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public sbyte ReadSByte() => unchecked((sbyte)Take(1)[0]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort ReadUInt16() => TOrder.UInt16(Take(2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public short ReadInt16() => unchecked((short)TOrder.UInt16(Take(2)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadUInt32() => TOrder.UInt32(Take(4));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ReadInt32() => unchecked((int)TOrder.UInt32(Take(4)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadUInt64() => TOrder.UInt64(Take(8));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long ReadInt64() => unchecked((long)TOrder.UInt64(Take(8)));

    /// <summary>Reads <paramref name="count"/> bytes as a view (no copy).</summary>
    public ReadOnlySpan<byte> ReadBytes(int count) => Take(count);

    public void Skip(int count) => Take(count);

    /// <summary>Advances to the next multiple of <paramref name="alignment"/> (relative to the span start).</summary>
    public void Align(int alignment)
    {
        Debug.Assert(alignment > 0 && (alignment & (alignment - 1)) == 0);
        int pad = (alignment - (_position & (alignment - 1))) & (alignment - 1);
        Skip(pad);
    }

    /// <summary>Reads a u64 if 8 bytes remain; otherwise returns false and consumes nothing.</summary>
    public bool TryReadUInt64(out ulong value)
    {
        if (_span.Length - _position < 8) { value = 0; return false; }
        value = TOrder.UInt64(_span.Slice(_position, 8));
        _position += 8;
        return true;
    }

    /// <summary>A bounded sub-cursor over <c>[start, start + length)</c> of this span (relative offsets).</summary>
    public readonly SpanCursor<TOrder> Slice(int start, int length)
    {
        if (unchecked((uint)start) > (uint)_span.Length || unchecked((uint)length) > (uint)(_span.Length - start))
            ThrowHelper.OutOfBounds(BaseOffset + Math.Max(0, start), length, _span.Length - Math.Max(0, start));
        return new SpanCursor<TOrder>(_span.Slice(start, length), BaseOffset + start);
    }

    /// <summary>A bounded sub-cursor over the next <paramref name="length"/> bytes, consuming them.</summary>
    public SpanCursor<TOrder> ReadSlice(int length)
    {
        long at = AbsoluteOffset;
        return new SpanCursor<TOrder>(Take(length), at);
    }
}
