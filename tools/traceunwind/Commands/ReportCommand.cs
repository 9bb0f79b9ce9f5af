using System.CommandLine;
using TraceUnwind.Output;

namespace TraceUnwind.Cli.Commands;

/// <summary><c>traceunwind report</c>: a perf-report-like overhead summary.</summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var options = new SampleOptions();
        var weight = new Option<SampleWeight>("--weight")
        {
            Description = "Overhead by period (as perf report) or by sample count",
            DefaultValueFactory = _ => SampleWeight.Period,
        };
        var rows = new Option<int>("--max-rows") { Description = "Show at most N rows per table (0 = all)", DefaultValueFactory = _ => 0, HelpName = "N" };
        var cmd = new Command("report",
            "Self overhead by comm, shared object and symbol, like perf report --stdio --no-children --sort comm,dso,sym.");
        options.AddTo(cmd);
        cmd.Options.Add(weight);
        cmd.Options.Add(rows);
        cmd.SetAction((pr, ct) =>
        {
            var ro = new ReportOptions { Weight = pr.GetValue(weight), MaxRows = pr.GetValue(rows) };
            return SampleCommandRunner.RunAsync(pr, options, "report", (output, symbolizer) => new ReportWriter(output, symbolizer, ro), ct);
        });
        return cmd;
    }
}
