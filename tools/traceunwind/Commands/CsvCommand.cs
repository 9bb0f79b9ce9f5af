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
            "Write one CSV row per frame: " + string.Join(',', CsvSampleWriter.Columns) + ". " +
            "time is seconds with 9 decimals, frame 0 is the innermost, offset = ip - mapping start (the kernel's [+0xOFF]), " +
            "file_offset = offset + the mapping's file offset.");
        options.AddTo(cmd);
        cmd.SetAction((pr, ct) => SampleCommandRunner.RunAsync(pr, options, "csv",
            (output, symbolizer) => new CsvSampleWriter(output, symbolizer), ct));
        return cmd;
    }
}
