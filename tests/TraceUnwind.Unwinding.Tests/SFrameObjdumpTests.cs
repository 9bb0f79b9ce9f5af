using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// <c>objdump --sframe</c> (binutils 2.46) output for every binary in fixtures/sframe/ is the
/// ground truth: our dump must be byte-identical, header lines included (objdump ran in
/// fixtures/sframe/ with the relative path, which we pass as the display name).
/// </summary>
public class SFrameObjdumpTests
{
    public static IReadOnlyList<string> DumpNames()
    {
        string root = Fixtures.Path("sframe");
        return Directory.EnumerateFiles(root, "*.objdump-sframe.txt", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(root, f).Replace('\\', '/')[..^".objdump-sframe.txt".Length])
            .Order(StringComparer.Ordinal).ToList();
    }

    public static TheoryData<string> Dumps() => new(DumpNames());

    [Fact]
    public void EveryArchitectureHasDumps()
    {
        var names = DumpNames();
        Assert.Contains(names, n => n.StartsWith("x86_64/", StringComparison.Ordinal));
        Assert.Contains(names, n => n.StartsWith("aarch64/", StringComparison.Ordinal));
        Assert.Contains(names, n => n.StartsWith("s390x/", StringComparison.Ordinal));
        Assert.Equal(24, names.Count);
    }

    [Theory]
    [MemberData(nameof(Dumps))]
    public void DumpMatchesObjdump(string binary)
    {
        string expected = Fixtures.ReadText("sframe", binary + ".objdump-sframe.txt");
        var elf = ElfFile.Load(Fixtures.Path("sframe", binary));
        string? actual = SFrameDumper.DumpFile(elf, binary);
        Assert.NotNull(actual);
        Assert.Equal(expected, actual);
    }
}
