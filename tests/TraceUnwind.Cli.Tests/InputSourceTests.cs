using TraceUnwind.Cli;
using TraceUnwind.Testing;

namespace TraceUnwind.Cli.Tests;

public class InputSourceTests
{
    [Theory]
    [InlineData("perf-defer/recur-defer/perf.data", InputFormat.PerfFile)]
    [InlineData("ftrace/bash_loop/raw.txt", InputFormat.Text)]
    [InlineData("trace-cmd/report_default.txt", InputFormat.Text)]
    [InlineData("sframe/x86_64/recursion-O2", InputFormat.Unknown)]
    public void SniffsRealFiles(string fixture, InputFormat expected)
    {
        using var src = InputSource.Open(Fixtures.Path(fixture.Split('/')));
        Assert.Equal(expected, src.Format);
        Assert.Equal(0, src.Stream.Position);
    }

    [Fact]
    public void PipeInputIsReplayedFromByteZero()
    {
        var bytes = File.ReadAllBytes(Fixtures.Path("ftrace", "bash_loop", "raw.txt"));
        using var src = InputSource.Open(InputSource.StdinName, new ChunkedStream(bytes, () => 3));
        Assert.Equal(InputFormat.Text, src.Format);
        Assert.False(src.IsSeekable);
        var ms = new MemoryStream();
        src.Stream.CopyTo(ms);
        Assert.Equal(bytes, ms.ToArray());
    }

    [Fact]
    public void DescribesElfPrecisely()
    {
        using var src = InputSource.Open(Fixtures.Path("sframe", "x86_64", "recursion-O2"));
        Assert.Equal("starts with 7f 45 4c 46 02 01 01 00 (\".ELF....\"): an ELF file", src.Describe());
    }

    [Fact]
    public void EmptyInput()
    {
        using var src = InputSource.Open(InputSource.StdinName, new ChunkedStream([], () => 3));
        Assert.Equal(InputFormat.Empty, src.Format);
        Assert.Equal("the input is empty", src.Describe());
    }

    [Fact]
    public void PipeModePerfHeader()
    {
        byte[] head = [.. "PERFILE2"u8, 16, 0, 0, 0, 0, 0, 0, 0];
        Assert.Equal(InputFormat.PerfPipe, InputSource.Sniff(head));
        byte[] swapped = [.. "2ELIFREP"u8, 0, 0, 0, 0, 0, 0, 0, 104];
        Assert.Equal(InputFormat.PerfFile, InputSource.Sniff(swapped));
    }
}
