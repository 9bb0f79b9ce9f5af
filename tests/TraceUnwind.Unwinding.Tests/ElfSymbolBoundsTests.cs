using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// A symbol without a size (<c>_init</c>, <c>_fini</c>: <c>readelf -s</c> shows size 0) reaches to the
/// next symbol but never past the end of its section: an address in <c>.rodata</c> after <c>.fini</c>
/// has no function (addr2line says <c>??</c>), it is not <c>_fini+0xa27</c>.
/// </summary>
public class ElfSymbolBoundsTests
{
    // fixtures/ftrace-perf's workload (gcc 12, Debian 12), from its readelf -sW / -SW:
    //   36: 0000000000001620     0 FUNC    GLOBAL HIDDEN    16 _fini
    //   [16] .fini    PROGBITS 0000000000001620 001620 000009 00 AX
    //   [17] .rodata  PROGBITS 0000000000002000 002000 00008a 00  A
    private static readonly string Tuwork = Fixtures.Path("ftrace-perf", "symfs", "tmp", "tu-e2e", "bin", "tuwork");

    [Fact]
    public void SizeZeroSymbolEndsWithItsSection()
    {
        var symbols = ElfFile.Load(Tuwork).Symbols!;
        Assert.True(symbols.TryFind(0x1620, out int i));
        Assert.Equal("_fini", symbols.NameOf(i));
        Assert.True(symbols.TryFind(0x1628, out _));        // last byte of .fini
        Assert.False(symbols.TryFind(0x1629, out _));       // past .fini
        Assert.False(symbols.TryFind(0x2047, out _));       // in .rodata
    }
}
