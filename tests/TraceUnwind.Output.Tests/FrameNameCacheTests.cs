using System.Buffers;
using System.Text;
using TraceUnwind.Model;
using TraceUnwind.Output.Internal;
using TraceUnwind.Processes;

namespace TraceUnwind.Output.Tests;

/// <summary>
/// The frame → name-id table of fold, report and the JSON writers keys frames by value (mapping
/// identity and offset, or address), so the same library in many processes is one entry and no
/// mapping object is kept; a frame is rendered once per identity.
/// </summary>
public class FrameNameCacheTests
{
    private sealed class Counting
    {
        public int Renders;
        public void Render(in Frame f, ArrayBufferWriter<byte> d)
        {
            Renders++;
            var text = f.Mapping is { Kind: MappingKind.File or MappingKind.Special } m ? $"{m.Path}+{f.Address - m.Start:x}/{m.PgOff:x}/{f.Kind}/{(int)f.Flags}" : $"{f.Address:x}/{f.Kind}/{(int)f.Flags}";
            d.Write(Encoding.UTF8.GetBytes(text));
        }
    }

    [Fact]
    public void OneEntryPerIdentity()
    {
        var r = new Counting();
        var cache = new FrameNameCache(r.Render);
        // libc in two processes at two bases (two Mapping objects): one identity per offset.
        var libcA = new Mapping(0x7f0000000000, 0x7f0000100000, 0x28000, "/lib/libc.so.6");
        var libcB = new Mapping(0x7f1000000000, 0x7f1000100000, 0x28000, "/lib/libc.so.6");
        int a = cache.GetId(new Frame(0x7f0000001234, FrameKind.User, libcA, FrameFlags.ReturnAddress));
        int b = cache.GetId(new Frame(0x7f1000001234, FrameKind.User, libcB, FrameFlags.ReturnAddress));
        Assert.Equal(a, b);
        Assert.Equal((1, 1), (cache.DistinctFrames, r.Renders));
        // Another file offset of the same path is another identity (a symbolizer may name it differently).
        var libcOtherSegment = new Mapping(0x7f2000000000, 0x7f2000100000, 0x1000, "/lib/libc.so.6");
        cache.GetId(new Frame(0x7f2000001234, FrameKind.User, libcOtherSegment, FrameFlags.ReturnAddress));
        Assert.Equal(2, cache.DistinctFrames);
        // The same address with other flags or kind is another identity.
        cache.GetId(new Frame(0x7f0000001234, FrameKind.User, libcA));
        Assert.Equal(3, cache.DistinctFrames);
        // Anonymous memory is named by address: same offset, other address, other identity.
        var anonA = new Mapping(0x10000, 0x20000, 0, "//anon", Mapping.ProtRead | Mapping.ProtExec, MappingKind.Anonymous);
        var anonB = new Mapping(0x30000, 0x40000, 0, "//anon", Mapping.ProtRead | Mapping.ProtExec, MappingKind.Anonymous);
        int x = cache.GetId(new Frame(0x10010, FrameKind.User, anonA));
        int y = cache.GetId(new Frame(0x30010, FrameKind.User, anonB));
        Assert.NotEqual(x, y);
        Assert.Equal(x, cache.GetId(new Frame(0x10010, FrameKind.User, anonA)));
        Assert.Equal(5, cache.DistinctFrames);
        Assert.Equal(5, r.Renders);
    }

    [Fact]
    public void ManyFramesAndUnpackableFlags()
    {
        var r = new Counting();
        var cache = new FrameNameCache(r.Render);
        var libc = new Mapping(0x7f0000000000, 0x7f0010000000, 0, "/lib/libc.so.6");
        // Enough frames to grow the table several times; every id is stable afterwards.
        var ids = new int[50000];
        for (int i = 0; i < ids.Length; i++) ids[i] = cache.GetId(new Frame(0x7f0000000000UL + (ulong)i * 4, FrameKind.User, libc));
        for (int i = 0; i < ids.Length; i++) Assert.Equal(ids[i], cache.GetId(new Frame(0x7f0000000000UL + (ulong)i * 4, FrameKind.User, libc)));
        Assert.Equal(ids.Length, cache.DistinctFrames);
        // Flags the packed key has no room for take the dictionary path: still one identity each.
        int odd = cache.GetId(new Frame(0xffffffff81000000, FrameKind.Kernel, null, (FrameFlags)0x40));
        Assert.Equal(odd, cache.GetId(new Frame(0xffffffff81000000, FrameKind.Kernel, null, (FrameFlags)0x40)));
        Assert.NotEqual(odd, cache.GetId(new Frame(0xffffffff81000000, FrameKind.Kernel)));
        Assert.Equal(ids.Length + 2, cache.DistinctFrames);
        Assert.Equal(ids.Length + 2, r.Renders);
    }
}
