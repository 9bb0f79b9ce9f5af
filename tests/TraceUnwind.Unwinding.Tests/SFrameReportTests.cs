using System.Text.Json.Nodes;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Tests;

/// <summary><c>traceunwind sframe</c>'s work (the command itself only maps the count to an exit code).</summary>
public class SFrameReportTests
{
    private static (string Out, string Err, int Failed) Run(bool json, params string[] files)
    {
        var so = new StringWriter { NewLine = "\n" };
        var se = new StringWriter { NewLine = "\n" };
        int failed = SFrameReport.Run(so, se, files, json);
        return (so.ToString(), se.ToString(), failed);
    }

    [Fact]
    public void SeveralFilesPrintLikeObjdumpOnSeveralFiles()
    {
        // objdump prints each file's block in turn; run from fixtures/sframe with relative names.
        string dir = Fixtures.Path("sframe");
        string[] names = ["x86_64/stackcap", "aarch64/leaf-O2", "s390x/dynstack-O2"];
        string expected = string.Concat(names.Select(n => Fixtures.ReadText("sframe", n + ".objdump-sframe.txt")));
        string saved = Directory.GetCurrentDirectory();
        try
        {
            Directory.SetCurrentDirectory(dir);
            var (o, e, failed) = Run(false, names);
            Assert.Equal(expected, o);
            Assert.Equal("", e);
            Assert.Equal(0, failed);
        }
        finally { Directory.SetCurrentDirectory(saved); }
    }

    [Fact]
    public void JsonIsOneObjectForOneFileAndAnArrayForSeveral()
    {
        string a = Fixtures.Path("sframe", "x86_64", "leaf-O2"), b = Fixtures.Path("sframe", "s390x", "leaf-O2");
        var one = JsonNode.Parse(Run(true, a).Out)!;
        Assert.Null(SFrameDecodeTests.JsonDiff(JsonNode.Parse(Fixtures.ReadText("sframe", "x86_64", "leaf-O2.sframe.json")), one, "$"));
        var two = JsonNode.Parse(Run(true, a, b).Out)!.AsArray();
        Assert.Equal(2, two.Count);
        Assert.Null(SFrameDecodeTests.JsonDiff(JsonNode.Parse(Fixtures.ReadText("sframe", "s390x", "leaf-O2.sframe.json")), two[1], "$"));
    }

    [Fact]
    public void BadFilesAreNamedAndCounted()
    {
        string notElf = Fixtures.Path("sframe", "x86_64", "leaf-O2.disasm.txt");
        string good = Fixtures.Path("sframe", "x86_64", "leaf-O2");
        var (o, e, failed) = Run(false, notElf, good, Path.Combine(Path.GetTempPath(), "tu-no-such-file"));
        Assert.Equal(2, failed);
        Assert.Contains($"{notElf}: byte offset 0x0 (0): not an ELF file", e, StringComparison.Ordinal);
        Assert.Contains("tu-no-such-file", e, StringComparison.Ordinal);
        Assert.Contains("Contents of the SFrame section .sframe:", o, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusedSectionIsDumpedAndReported()
    {
        // An unsorted section: objdump still dumps it; the kernel refuses it.
        var bytes = File.ReadAllBytes(Fixtures.Path("sframe", "x86_64", "recursion-O2"));
        var elf = ElfFile.Parse(bytes);
        Assert.True(elf.TryFindSFrame(out var loc));
        bytes[loc.FileOffset + 3] &= 0xfe;
        string path = Path.Combine(Path.GetTempPath(), $"tu-sframe-unsorted-{Environment.ProcessId}");
        File.WriteAllBytes(path, bytes);
        try
        {
            var (o, e, failed) = Run(false, path);
            Assert.Equal(1, failed);
            Assert.Contains("    Flags: SFRAME_F_FDE_FUNC_START_PCREL\n", o, StringComparison.Ordinal);
            Assert.Contains($"fails the kernel's validation: {path}: byte offset 0x{loc.FileOffset + 3:x}", e, StringComparison.Ordinal);
            Assert.Contains("EINVAL: flags lack SFRAME_F_FDE_SORTED", e, StringComparison.Ordinal);
        }
        finally { File.Delete(path); }
    }
}
