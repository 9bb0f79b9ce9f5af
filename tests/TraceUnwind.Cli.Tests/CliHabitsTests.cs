using System.Buffers.Binary;
using System.CommandLine;
using TraceUnwind.Testing;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// What every command does with its command line, its inputs and its outputs, in-process through
/// <see cref="Program.Run"/>: exit codes (0 done, 1 bad input, 2 usage), <c>--help</c>, refused inputs named
/// precisely, empty input, a reader that goes away, damaged perf.data.
/// </summary>
public sealed class CliHabitsTests
{
    public static readonly TheoryData<string> SampleCommands = new() { "script", "fold", "csv", "report", "convert" };
    public static readonly TheoryData<string> AllCommands = new() { "", "script", "fold", "csv", "report", "convert", "rewrite", "inject", "sframe" };

    private static readonly string Elf = Fixtures.Path("sframe", "x86_64", "recursion-O2");
    private static readonly string PerfData = Fixtures.Path("perf", "bash_loop", "fp.data");
    private static readonly string RawTrace = FtracePerfCapture.CapturePath("perfclock", "raw.txt");
    private static readonly string SideBand = FtracePerfCapture.CapturePath("perfclock", "perf.data");

    private static string Temp(string name) => Path.Combine(Path.GetTempPath(), $"tu-e2e-{Guid.NewGuid():N}-{name}");

    // ---- --help ----

    [Theory]
    [MemberData(nameof(AllCommands))]
    public void HelpExitsZeroAndNamesEveryOption(string command)
    {
        var root = Program.BuildRoot();
        Command cmd = command == "" ? root : root.Subcommands.Single(c => c.Name == command);
        var r = Cli.Run(command == "" ? ["--help"] : [command, "--help"]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Code);
        Assert.Contains("Usage:", r.Stdout);
        static string Words(string s) => System.Text.RegularExpressions.Regex.Replace(s, @"\s+", " ");
        Assert.Contains(Words(cmd.Description!), Words(r.Stdout));
        foreach (var o in cmd.Options)
        {
            if (o.Hidden) Assert.DoesNotContain(o.Name, r.Stdout);
            else Assert.Contains(o.Name, r.Stdout);
        }
        foreach (var a in cmd.Arguments) Assert.Contains($"<{a.Name}>", r.Stdout);
        foreach (var s in cmd.Subcommands) Assert.Contains(s.Name, r.Stdout);
    }

    [Fact]
    public void NoCommandIsAUsageError()
    {
        var r = Cli.Run();
        Assert.Equal(2, r.Code);
        Assert.Contains("Try 'traceunwind --help'", r.Stderr);
    }

    // ---- usage errors: 2 ----

    [Theory]
    [InlineData("fold", "perf.data", "--bogus")]
    [InlineData("rewrite", "--clock-offset", "0.5")]                       // without --perf
    [InlineData("rewrite", "--perf", "x.data", "--clock-offset", "abc")]
    [InlineData("rewrite", "--perf", "x.data", "--maps", "y.maps")]
    [InlineData("rewrite", "--symfs", "/")]                                 // without --symbols
    [InlineData("rewrite", "--max-line-length", "10")]
    [InlineData("script", "--unwind", "magic")]
    [InlineData("inject", "in.data")]                                       // -o is required
    public void BadCommandLinesExitTwo(params string[] args)
    {
        var r = Cli.Run(args);
        Assert.Equal(2, r.Code);
        Assert.StartsWith("traceunwind: ", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    // ---- bad input: 1, naming the file and what it is ----

    [Theory]
    [MemberData(nameof(SampleCommands))]
    public void ElfInputIsRefusedNamingTheFile(string command)
    {
        var r = Cli.Run(command, Elf);
        Assert.Equal(1, r.Code);
        Assert.Equal($"traceunwind {command}: '{Elf}' is not a perf.data file or ftrace text: starts with 7f 45 4c 46 02 01 01 00 (\".ELF....\"): an ELF file\n", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void RewriteRefusesBinaryInputNamingTheFile()
    {
        var r = Cli.Run("rewrite", Elf);
        Assert.Equal(1, r.Code);
        Assert.Equal($"traceunwind rewrite: '{Elf}' is not ftrace text: starts with 7f 45 4c 46 02 01 01 00 (\".ELF....\"): an ELF file\n", r.Stderr);
        Assert.Equal("", r.Stdout);

        r = Cli.Run("rewrite", PerfData);
        Assert.Equal(1, r.Code);
        Assert.StartsWith($"traceunwind rewrite: '{PerfData}' is perf.data; rewrite reads ftrace text", r.Stderr);

        // The same through stdin: gzip'd text.
        r = Cli.RunWithStdin(File.ReadAllBytes(Fixtures.Path("ftrace", "bash_loop", "pairs.tsv.gz")), "rewrite");
        Assert.Equal(1, r.Code);
        Assert.StartsWith("traceunwind rewrite: 'stdin' is not ftrace text: starts with 1f 8b", r.Stderr);
        Assert.Contains("gzip data (decompress it first", r.Stderr);
    }

    [Theory]
    [MemberData(nameof(SampleCommands))]
    public void EmptyStdinSaysSo(string command)
    {
        var r = Cli.RunWithStdin([], command);
        Assert.Equal(1, r.Code);
        Assert.Equal($"traceunwind {command}: 'stdin' is not a perf.data file or ftrace text: the input is empty\n", r.Stderr);
    }

    [Fact]
    public void RewriteOfEmptyStdinSaysSo()
    {
        var r = Cli.RunWithStdin([], "rewrite");
        Assert.Equal(1, r.Code);
        Assert.Equal("traceunwind rewrite: 'stdin' is empty: no ftrace text to rewrite\n", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void MissingFilesAreInputErrors()
    {
        var r = Cli.Run("fold", "/nonexistent/perf.data");
        Assert.Equal(1, r.Code);
        Assert.StartsWith("traceunwind fold: cannot open '/nonexistent/perf.data': ", r.Stderr);

        r = Cli.Run("rewrite", "/nonexistent/trace.txt");
        Assert.Equal(1, r.Code);
        Assert.StartsWith("traceunwind rewrite: cannot open '/nonexistent/trace.txt': ", r.Stderr);

        r = Cli.Run("rewrite", RawTrace, "--perf", "/nonexistent/perf.data");
        Assert.Equal(1, r.Code);
        Assert.StartsWith("traceunwind rewrite: --perf: ", r.Stderr);
        Assert.Contains("/nonexistent/perf.data", r.Stderr);
        Assert.Equal("", r.Stdout);

        r = Cli.Run("rewrite", RawTrace, "--maps", "/nonexistent/maps");
        Assert.Equal(1, r.Code);
        Assert.StartsWith("traceunwind rewrite: --maps: ", r.Stderr);
    }

    [Fact]
    public void PerfOptionRefusesText()
    {
        var r = Cli.Run("rewrite", RawTrace, "--perf", RawTrace);
        Assert.Equal(1, r.Code);
        Assert.Equal($"traceunwind rewrite: --perf: {RawTrace}: byte offset 0x0 (0): not a perf.data file: starts with 20 20 20 20 20 20 20 20 (\"        \"), not PERFILE2\n", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    // ---- a reader that goes away: exit 0, nothing on stderr ----

    [Theory]
    [InlineData(0, "script")]
    [InlineData(0, "fold")]
    [InlineData(0, "csv")]
    [InlineData(0, "report")]
    [InlineData(0, "convert")]
    [InlineData(100, "script")]
    [InlineData(100, "csv")]
    public void ClosedStdoutEndsQuietly(int budget, string command)
    {
        var (code, stderr) = Cli.RunInto(new MemoryStream(), new BrokenPipeStream(budget), command, PerfData);
        Assert.Equal("", stderr);
        Assert.Equal(0, code);
    }
    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    public void ClosedStdoutEndsRewriteQuietly(int budget)
    {
        var (code, stderr) = Cli.RunInto(new MemoryStream(), new BrokenPipeStream(budget), "rewrite", RawTrace, "--perf", SideBand);
        Assert.Equal("", stderr);
        Assert.Equal(0, code);
    }

    // ---- damaged perf.data ----

    /// <summary>The records of a file-mode perf.data's data section (offset, type, size), walked by their headers.</summary>
    private static List<(int Offset, uint Type, int Size)> Records(byte[] data)
    {
        long start = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(40)), size = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(48));
        var list = new List<(int, uint, int)>();
        for (long p = start; p < start + size;)
        {
            int s = BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan((int)p + 6));
            list.Add(((int)p, BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan((int)p)), s));
            p += s;
        }
        return list;
    }

    [Fact]
    public void DamagedRecordPrintsWhatWasReadAndNamesTheByteOffset()
    {
        var data = File.ReadAllBytes(PerfData);
        var records = Records(data);
        var bad = records[records.Count / 2];
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(bad.Offset + 6), 4);   // a size below the 8-byte header
        var path = Temp("damaged.data");
        File.WriteAllBytes(path, data);
        try
        {
            var r = Cli.Run("script", path);
            Assert.Equal(0, r.Code);
            // Every sample before the damaged record, none after (the record boundaries are lost there).
            int before = records.TakeWhile(x => x.Offset < bad.Offset).Count(x => x.Type == 9);
            Assert.Equal(before, Cli.Lines(r.Stdout).Count(l => l.EndsWith(" cpu-clock:", StringComparison.Ordinal)));
            Assert.Contains($"{path}: byte offset 0x{bad.Offset:x} ({bad.Offset}): record of type {bad.Type} at 0x{bad.Offset:x} has size 4 (< 8)", r.Stderr);
            Assert.StartsWith("traceunwind: 1 x perf.record.bad-size (skipped)", r.Stderr);

            // The same file as rewrite's --perf: the side-band up to the damage, the trace rewritten, the summary.
            var rw = Cli.Run("rewrite", RawTrace, "--perf", path);
            Assert.Equal(0, rw.Code);
            Assert.Contains($"{path}: byte offset 0x{bad.Offset:x}", rw.Stderr);
            Assert.Equal(Cli.Lines(File.ReadAllText(RawTrace)).Count, Cli.Lines(rw.Stdout).Count);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TruncatedFileNamesTheByteOffset()
    {
        // A perf.data cut in half: what is there is read and printed, the summary names the header
        // field (byte 48, data size) and the cut record's offset; exit 0 as for any skipped record.
        var data = File.ReadAllBytes(SideBand);
        var path = Temp("truncated.data");
        File.WriteAllBytes(path, data.AsSpan(0, data.Length / 2).ToArray());
        try
        {
            long dataOffset = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(40)), dataSize = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(48));
            string expected = $"{path}: byte offset 0x30 (48): data section 0x{dataOffset:x}+0x{dataSize:x} runs past the end of the file (size 0x{data.Length / 2:x})";
            var r = Cli.Run("script", "--no-merge", path);
            Assert.Equal(0, r.Code);
            Assert.Contains("traceunwind: 1 x perf.data.truncated-file (skipped)", r.Stderr);
            Assert.Contains(expected, r.Stderr);
            var rw = Cli.Run("rewrite", RawTrace, "--perf", path);
            Assert.Equal(0, rw.Code);
            Assert.Contains(expected, rw.Stderr);
            Assert.NotEqual("", rw.Stdout);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void OutputFileCannotBeWritten()
    {
        var r = Cli.Run("rewrite", RawTrace, "-o", "/nonexistent/dir/out.txt");
        Assert.Equal(1, r.Code);
        Assert.StartsWith("traceunwind rewrite: cannot write '/nonexistent/dir/out.txt': ", r.Stderr);
        r = Cli.Run("fold", PerfData, "-o", "/nonexistent/dir/out.txt");
        Assert.Equal(1, r.Code);
        Assert.StartsWith("traceunwind fold: cannot write '/nonexistent/dir/out.txt': ", r.Stderr);
    }

    [Fact]
    public void RewriteToAFileEqualsRewriteToStdout()
    {
        var path = Temp("out.txt");
        try
        {
            var a = Cli.Run("rewrite", RawTrace, "--perf", SideBand, "-o", path);
            Assert.Equal(0, a.Code);
            Assert.Equal("", a.Stdout);
            var b = Cli.Run("rewrite", RawTrace, "--perf", SideBand);
            Assert.Equal(b.StdoutBytes, File.ReadAllBytes(path));
            // stdin that is a file (seekable, like `< raw.txt`) gives the same.
            var c = Cli.RunWithStdin(File.ReadAllBytes(RawTrace), "rewrite", "--perf", SideBand);
            Assert.Equal(b.StdoutBytes, c.StdoutBytes);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
