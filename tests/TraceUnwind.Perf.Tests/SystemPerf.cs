using System.Diagnostics;

namespace TraceUnwind.Perf.Tests;

/// <summary>The machine's own perf (perf 6.1 here, which knows nothing of deferred callchains), when present.</summary>
public static class SystemPerf
{
    private static readonly Lazy<string?> VersionLazy = new(() =>
    {
        try
        {
            var (code, stdout, _) = Run(["--version"], TimeSpan.FromSeconds(30));
            return code == 0 && stdout.StartsWith("perf version", StringComparison.Ordinal) ? stdout.Trim() : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            return null;
        }
    });

    /// <summary><c>perf --version</c>, or null when no working perf is on the PATH.</summary>
    public static string? Version => VersionLazy.Value;

    /// <summary>Runs perf with <paramref name="args"/> under a clean environment; returns exit code, stdout, stderr.</summary>
    public static (int Code, string Stdout, string Stderr) Run(IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo("perf")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // perf reads ~/.debug and $HOME/.perfconfig: point HOME at an empty folder so only our arguments count.
        string home = Path.Combine(Path.GetTempPath(), "tu-perf-home");
        Directory.CreateDirectory(home);
        psi.Environment["HOME"] = home;
        psi.Environment["PAGER"] = "cat";
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("perf did not start");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"perf {string.Join(' ', args)} did not finish in {timeout}");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}

/// <summary>A theory that is skipped, saying why, when the machine has no perf (CI machines may lack it).</summary>
public sealed class NeedsPerfTheoryAttribute : TheoryAttribute
{
    public NeedsPerfTheoryAttribute()
    {
        if (SystemPerf.Version is null) Skip = "no working `perf` on the PATH: the check with the system's perf script is skipped (the round trip through our own reader still runs)";
    }
}

/// <summary>A fact that is skipped, saying why, when the machine has no perf.</summary>
public sealed class NeedsPerfFactAttribute : FactAttribute
{
    public NeedsPerfFactAttribute()
    {
        if (SystemPerf.Version is null) Skip = "no working `perf` on the PATH: the check with the system's perf script is skipped";
    }
}
