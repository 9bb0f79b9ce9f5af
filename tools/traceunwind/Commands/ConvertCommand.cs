using System.CommandLine;
using TraceUnwind.Output;

namespace TraceUnwind.Cli.Commands;

/// <summary>The JSON formats profilers' UIs open.</summary>
internal enum ConvertFormat
{
    /// <summary>speedscope's file format (https://www.speedscope.app).</summary>
    Speedscope,
    /// <summary>Chrome trace event JSON (Perfetto UI, chrome://tracing).</summary>
    Chromium,
}

/// <summary><c>traceunwind convert</c>: speedscope or Chromium/Perfetto JSON.</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var options = new SampleOptions();
        var format = new Option<ConvertFormat>("--format", "-f")
        {
            Description = "speedscope (https://www.speedscope.app) or chromium (Chrome trace events: Perfetto UI, chrome://tracing)",
            DefaultValueFactory = _ => ConvertFormat.Speedscope,
        };
        var byProcess = new Option<bool>("--by-process") { Description = "speedscope: one profile per process instead of per thread" };
        var weight = new Option<SampleWeight>("--weight") { Description = "speedscope: weight samples by count or by period", DefaultValueFactory = _ => SampleWeight.Samples };
        var cmd = new Command("convert",
            "Write the samples as speedscope JSON or Chrome trace events (Perfetto UI, chrome://tracing).");
        options.AddTo(cmd);
        cmd.Options.Add(format);
        cmd.Options.Add(byProcess);
        cmd.Options.Add(weight);
        cmd.SetAction((pr, ct) =>
        {
            var f = pr.GetValue(format);
            string name = Path.GetFileName(pr.GetValue(options.Input) ?? "-");
            return SampleCommandRunner.RunAsync(pr, options, "convert", (output, symbolizer) => f switch
            {
                ConvertFormat.Chromium => new ChromiumTraceWriter(output, symbolizer),
                _ => new SpeedscopeWriter(output, symbolizer, new SpeedscopeOptions
                {
                    GroupBy = pr.GetValue(byProcess) ? SpeedscopeGrouping.Process : SpeedscopeGrouping.Thread,
                    Weight = pr.GetValue(weight),
                    Name = name,
                }),
            }, ct);
        });
        return cmd;
    }
}
