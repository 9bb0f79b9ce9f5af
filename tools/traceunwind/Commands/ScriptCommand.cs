using System.CommandLine;
using TraceUnwind.Output;

namespace TraceUnwind.Cli.Commands;

/// <summary><c>traceunwind script</c>: perf-script-like text, one block per sample.</summary>
internal static class ScriptCommand
{
    public static Command Create()
    {
        var options = new SampleOptions();
        var cmd = new Command("script",
            "Print every sample with its whole stack, like `perf script`: a header line " +
            "(comm pid/tid [cpu] seconds.nanoseconds: period event:), then one frame per line " +
            "(address, symbol, and path[+0xOFF] for user frames), a blank line between samples.");
        options.AddTo(cmd);
        cmd.SetAction((pr, ct) => SampleCommandRunner.RunAsync(pr, options, "script",
            (output, symbolizer) => new PerfScriptWriter(output, symbolizer), ct));
        return cmd;
    }
}
