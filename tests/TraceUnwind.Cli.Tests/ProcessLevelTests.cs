using System.Diagnostics;
using TraceUnwind.Testing;

namespace TraceUnwind.Cli.Tests;

/// <summary>
/// The built <c>traceunwind</c> run as a process under <c>/bin/bash</c>, for what only real descriptors show:
/// a standard stream that is a regular file shared with other writers, and a reader that exits early (EPIPE).
/// </summary>
public sealed class ProcessLevelTests
{
    private static readonly string Tool = typeof(Program).Assembly.Location;

    /// <summary>The dotnet host running these tests (testhost runs under it), else the one on PATH.</summary>
    private static string DotnetHost()
    {
        var env = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(env) && File.Exists(env)) return env;
        var self = Environment.ProcessPath;
        return self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static (int Code, string Stdout, string Stderr) Bash(string script, string workDir)
    {
        var psi = new ProcessStartInfo("/bin/bash", ["-c", script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workDir,
        };
        psi.Environment["TU"] = $"{Quote(DotnetHost())} {Quote(Tool)}";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), "bash did not finish");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void OutputSharedWithOtherWritersIsNotOverwritten()
    {
        // (echo header; traceunwind ...; echo footer) > out, and 2>&1 into the same file: every writer's bytes
        // end up in order (a FileStream on fd 1 wrote with pwrite at offsets of its own and left the shared
        // offset behind: "footer" overwrote the start of our output, the stats line the start of the trace).
        var dir = Directory.CreateTempSubdirectory("tu-e2e-proc-").FullName;
        try
        {
            string raw = FtracePerfCapture.CapturePath("perfclock", "raw.txt"), perf = FtracePerfCapture.CapturePath("perfclock", "perf.data");
            var expected = Cli.Run("rewrite", raw, "--perf", perf).Stdout;
            var stats = Cli.Run("rewrite", raw, "--perf", perf, "--stats").Stderr;
            Assert.StartsWith("traceunwind rewrite: ", stats);
            var r = Bash($"(echo header; eval \"$TU rewrite {Quote(raw)} --perf {Quote(perf)} --stats\"; echo footer) > out.txt 2>&1", dir);
            Assert.Equal(0, r.Code);
            Assert.Equal("header\n" + expected + stats + "footer\n", File.ReadAllText(Path.Combine(dir, "out.txt")));

            string data = Fixtures.Path("perf", "bash_loop", "fp.data");
            var folded = Cli.Run("fold", data).Stdout;
            r = Bash($"(echo header; eval \"$TU fold {Quote(data)}\"; echo footer) > fold.txt", dir);
            Assert.Equal(0, r.Code);
            Assert.Equal("header\n" + folded + "footer\n", File.ReadAllText(Path.Combine(dir, "fold.txt")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("script", "perf/bash_loop/fp.data")]
    [InlineData("csv", "perf/bash_loop/fp.data")]
    [InlineData("rewrite", "ftrace/bash_loop/raw.txt")]
    [InlineData("script", "ftrace/bash_loop/raw.txt")]
    public void HeadClosingThePipeEndsQuietly(string command, string input)
    {
        // More output than a pipe holds (64 KiB), so the writes after head exits fail with EPIPE.
        var dir = Directory.CreateTempSubdirectory("tu-e2e-proc-").FullName;
        try
        {
            string path = Fixtures.Path(input.Split('/'));
            File.WriteAllText(Path.Combine(dir, "none.maps"), "");   // no snapshots: frames stay raw, no live /proc lookups
            var full = command == "rewrite" ? Cli.Run(command, path, "--maps", Path.Combine(dir, "none.maps")) : Cli.Run(command, path);
            var r = Bash($"eval \"$TU {command} {Quote(path)}{(command == "rewrite" ? " --maps none.maps" : "")}\" 2> err.txt | head -n 2; echo \"rc=${{PIPESTATUS[0]}}\"", dir);
            Assert.Equal("", File.ReadAllText(Path.Combine(dir, "err.txt")));
            var lines = Cli.Lines(r.Stdout);
            Assert.Equal("rc=0", lines[^1]);
            Assert.Equal(Cli.Lines(full.Stdout).Take(2), lines.Take(2));
            Assert.True(full.StdoutBytes.Length > 1 << 16, $"{input}: {full.StdoutBytes.Length} bytes of output, too few to fill a pipe");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
