using TraceUnwind.Processes;
using TraceUnwind.Symbols;
using TraceUnwind.Testing;

namespace TraceUnwind.Core.Tests;

public class AddressSpaceTests
{
    private static AddressSpace FromMaps(string fixture)
    {
        var a = new AddressSpace();
        foreach (var m in ProcMapsParser.ParseAll(File.ReadAllBytes(Fixtures.Path("core", fixture)))) a.Insert(m);
        return a;
    }

    [Fact]
    public void FindAndFindVmaFollowTheKernel()
    {
        var a = FromMaps("dlopen-after-unlink.maps");
        Assert.Equal(34, a.Count);
        // Inside libc's r-xp mapping.
        var m = a.Find(0x7f132fd4d123)!;
        Assert.Equal("/usr/lib/x86_64-linux-gnu/libc.so.6", m.Path);
        Assert.Equal(0x123ul, m.Offset(0x7f132fd4d123));
        Assert.Equal(0x26123ul, m.FileOffset(0x7f132fd4d123));
        // In the gap below libplug_del.so: no containing mapping, find_vma gives the next one up,
        // and the sym-userobj offset wraps (kernel-printed example: hostname[+0xfffffffffffff800]).
        ulong gap = 0x7f132ff0c000 - 0x800;
        Assert.Null(a.Find(gap));
        var next = a.FindVma(gap)!;
        Assert.Equal("/tmp/tu/libplug_del.so (deleted)", next.Path);
        Assert.Equal("/tmp/tu/libplug_del.so (deleted)[+0xfffffffffffff800]", UserObj.Format(next, gap));
        // Above every mapping: nothing.
        Assert.Null(a.FindVma(0xfffffffffffff000));
    }

    [Fact]
    public void InsertCutsOlderOverlaps()
    {
        var a = new AddressSpace();
        // ld.so maps the whole file first, then its segments over it (as perf's MMAP2 records show).
        a.Insert(new Mapping(0x1000, 0x36000, 0, "/lib/ld.so", Mapping.ProtRead));
        a.Insert(new Mapping(0x2000, 0x28000, 0x1000, "/lib/ld.so", Mapping.ProtRead | Mapping.ProtExec));
        Assert.Equal(3, a.Count);
        Assert.Equal((0x1000ul, 0x2000ul, 0ul), (a.Mappings[0].Start, a.Mappings[0].End, a.Mappings[0].PgOff));
        Assert.Equal((0x2000ul, 0x28000ul, 0x1000ul), (a.Mappings[1].Start, a.Mappings[1].End, a.Mappings[1].PgOff));
        Assert.Equal((0x28000ul, 0x36000ul, 0x27000ul), (a.Mappings[2].Start, a.Mappings[2].End, a.Mappings[2].PgOff));
        // A mapping covering several removes them all.
        a.Insert(new Mapping(0x0, 0x40000, 0, "//anon", Mapping.ProtRead, MappingKind.Anonymous));
        Assert.Equal(1, a.Count);
        a.Remove(0x1000, 0x2000);
        Assert.Equal(2, a.Count);
        Assert.Null(a.Find(0x1800));
    }

    [Fact]
    public void GenerationChangesOnEveryEdit()
    {
        var a = new AddressSpace();
        int g0 = a.Generation;
        a.Insert(new Mapping(0x1000, 0x2000, 0, "/x"));
        Assert.NotEqual(g0, a.Generation);
        var c = a.Clone();
        c.Clear();
        Assert.Equal(1, a.Count);
    }
}

/// <summary>
/// Find and FindVma (binary search over the cached ends, last-hit cache) agree with a linear scan
/// of <see cref="AddressSpace.Mappings"/> while inserts and removals interleave with lookups.
/// </summary>
public class AddressSpaceLookupCacheTests
{
    private static Mapping? ScanFind(AddressSpace a, ulong address)
    {
        foreach (var m in a.Mappings) if (m.Contains(address)) return m;
        return null;
    }

    private static Mapping? ScanFindVma(AddressSpace a, ulong address)
    {
        foreach (var m in a.Mappings) if (m.End > address) return m;
        return null;
    }

    [Fact]
    public void LookupsFollowEveryEdit()
    {
        var rng = new Random(11);
        var a = new AddressSpace();
        ulong Page() => (ulong)rng.Next(0, 4096) << 12;
        for (int step = 0; step < 4000; step++)
        {
            int op = rng.Next(10);
            if (op < 3)
            {
                ulong s = Page(), len = (ulong)rng.Next(1, 64) << 12;
                a.Insert(new Mapping(s, s + len, 0, $"/lib/m{step}.so"));
            }
            else if (op == 3)
            {
                ulong s = Page();
                a.Remove(s, s + ((ulong)rng.Next(1, 32) << 12));
            }
            else if (op == 4 && rng.Next(20) == 0) a.Clear();
            // Several lookups, often near the previous one (the cache's case), sometimes anywhere.
            ulong at = Page() + (ulong)rng.Next(4096);
            for (int k = 0; k < 6; k++)
            {
                ulong x = k % 3 == 2 ? Page() + (ulong)rng.Next(4096) : at + (ulong)rng.Next(0, 3) * 0x800;
                Assert.Same(ScanFind(a, x), a.Find(x));
                Assert.Same(ScanFindVma(a, x), a.FindVma(x));
            }
        }
    }

    [Fact]
    public void ACloneHasItsOwnCache()
    {
        var a = new AddressSpace();
        a.Insert(new Mapping(0x1000, 0x3000, 0, "/bin/a"));
        Assert.Equal("/bin/a", a.Find(0x1800)!.Path);
        var b = a.Clone();
        b.Insert(new Mapping(0x1000, 0x2000, 0, "/bin/b"));
        Assert.Equal("/bin/b", b.Find(0x1800)!.Path);
        Assert.Equal("/bin/a", a.Find(0x1800)!.Path);
        Assert.Equal("/bin/a", b.Find(0x2800)!.Path);
        Assert.Null(b.Find(0x3000));
    }
}
