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
            "Print every sample with its stack, like perf script (user frames as path[+0xOFF]).");
        options.AddTo(cmd);
        cmd.SetAction((pr, ct) => SampleCommandRunner.RunAsync(pr, options, "script",
            (output, symbolizer) => new PerfScriptWriter(output, symbolizer), ct));
        return cmd;
    }
}
