using System.CommandLine;
using TraceUnwind.Output;

namespace TraceUnwind.Cli.Commands;

/// <summary><c>traceunwind csv</c>: one row per frame.</summary>
internal static class CsvCommand
{
    public static Command Create()
    {
        var options = new SampleOptions();
        var cmd = new Command("csv",
            "One CSV row per frame (" + string.Join(',', CsvSampleWriter.Columns) + "); offset = ip - mapping start, as the kernel's [+0xOFF].");
        options.AddTo(cmd);
        cmd.SetAction((pr, ct) => SampleCommandRunner.RunAsync(pr, options, "csv",
            (output, symbolizer) => new CsvSampleWriter(output, symbolizer), ct));
        return cmd;
    }
}
