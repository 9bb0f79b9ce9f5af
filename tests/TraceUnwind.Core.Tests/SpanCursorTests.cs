using TraceUnwind.Buffers;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Core.Tests;

public class SpanCursorTests
{
    private static readonly byte[] Data = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09];

    [Fact]
    public void ReadsBothByteOrders()
    {
        var le = new SpanCursor<LittleEndian>(Data);
        Assert.Equal(0x0201, le.ReadUInt16());
        Assert.Equal(0x06050403u, le.ReadUInt32());
        var be = new SpanCursor<BigEndian>(Data);
        Assert.Equal(0x0102030405060708ul, be.ReadUInt64());
        Assert.Equal(1, be.Remaining);
    }

    [Fact]
    public void OutOfBoundsNamesAbsoluteOffset()
    {
        var ex = Assert.Throws<TraceFormatException>(() =>
        {
            var c = new SpanCursor<LittleEndian>(Data, baseOffset: 0x1000);
            c.Skip(4);
            c.ReadUInt64();
        });
        Assert.Equal(0x1004, ex.Position.ByteOffset);
        Assert.Contains("needed 8 bytes", ex.Message);
        Assert.Contains("only 5 left", ex.Message);
    }

    [Fact]
    public void NegativeCountIsOutOfBounds()
    {
        Assert.Throws<TraceFormatException>(() => new SpanCursor<LittleEndian>(Data).Skip(-1));
        Assert.Throws<TraceFormatException>(() => new SpanCursor<LittleEndian>(Data).Slice(8, 2));
        Assert.Throws<TraceFormatException>(() => new SpanCursor<LittleEndian>(Data).Slice(-1, 2));
    }

    [Fact]
    public void SliceKeepsAbsoluteOffsets()
    {
        var c = new SpanCursor<LittleEndian>(Data, 100);
        var s = c.Slice(4, 4);
        Assert.Equal(104, s.AbsoluteOffset);
        Assert.Equal(0x08070605u, s.ReadUInt32());
        Assert.True(s.IsAtEnd);
        Assert.False(s.TryReadUInt64(out _));
    }

    [Fact]
    public void AlignIsRelativeToSpanStart()
    {
        var c = new SpanCursor<LittleEndian>(Data);
        c.Skip(1);
        c.Align(8);
        Assert.Equal(8, c.Position);
        c.Align(8);
        Assert.Equal(8, c.Position);
    }
}
