using System.Text;
using TraceUnwind.Testing;

namespace TraceUnwind.Cli.Tests;

/// <summary><c>traceunwind sframe</c> through the CLI: objdump's body for a real binary, errors on bad input.</summary>
public sealed class SFrameCliTests
{
    private static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var r = Cli.Run(args);
        return (r.Code, r.Stdout, r.Stderr);
    }

    [Theory]
    [InlineData("x86_64", "recursion-O2")]
    [InlineData("aarch64", "leaf-O2")]
    [InlineData("s390x", "leaf-O2")]
    public void PrintsObjdumpsBody(string arch, string binary)
    {
        var (code, stdout, stderr) = Run("sframe", Fixtures.Path("sframe", arch, binary));
        Assert.True(code == 0, stderr);
        // objdump's dump starts with the file name line; everything from "Contents of the SFrame section" on is the body.
        string expected = File.ReadAllText(Fixtures.Path("sframe", arch, binary + ".objdump-sframe.txt"));
        string Body(string s) => s[s.IndexOf("Contents of the SFrame section", StringComparison.Ordinal)..].TrimEnd();
        Assert.Equal(Body(expected), Body(stdout));
    }

    [Fact]
    public void RefusesNonElfWithItsName()
    {
        string notElf = Fixtures.Path("core", "bash-post-exec.maps");
        var (code, _, stderr) = Run("sframe", notElf);
        Assert.Equal(1, code);
        Assert.Contains("bash-post-exec.maps", stderr);
    }
}
