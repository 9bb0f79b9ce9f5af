using System.CommandLine;
using TraceUnwind.Output;

namespace TraceUnwind.Cli.Commands;

/// <summary><c>traceunwind fold</c>: folded stacks for flamegraph.pl, speedscope, inferno.</summary>
internal static class FoldCommand
{
    public static Command Create()
    {
        var options = new SampleOptions();
        var pid = new Option<bool>("--pid") { Description = "Add the pid to the comm (comm-PID), as stackcollapse-perf.pl --pid" };
        var tid = new Option<bool>("--tid") { Description = "Add pid and tid to the comm (comm-PID/TID), as stackcollapse-perf.pl --tid" };
        var kernel = new Option<bool>("--kernel") { Description = "Mark kernel frames with _[k], as stackcollapse-perf.pl --kernel" };
        var weight = new Option<SampleWeight>("--weight")
        {
            Description = "Count samples, or sum their periods",
            DefaultValueFactory = _ => SampleWeight.Samples,
        };
        var eventName = new Option<string?>("--event") { Description = "Only samples of this event (perf captures with several events)", HelpName = "NAME" };
        var moduleNames = new Option<bool>("--module-names")
        {
            Description = "Name frames without a symbol [module] as stackcollapse-perf.pl does from perf script, instead of path[+0xOFF]",
        };
        var cmd = new Command("fold",
            "Folded stacks for flame graphs (comm;outermost;...;innermost count), sorted and summed as stackcollapse-perf.pl does.");
        options.AddTo(cmd);
        cmd.Options.Add(pid);
        cmd.Options.Add(tid);
        cmd.Options.Add(kernel);
        cmd.Options.Add(weight);
        cmd.Options.Add(eventName);
        cmd.Options.Add(moduleNames);
        cmd.SetAction((pr, ct) =>
        {
            var fo = new FoldedOptions
            {
                IncludePid = pr.GetValue(pid) || pr.GetValue(tid),
                IncludeTid = pr.GetValue(tid),
                AnnotateKernel = pr.GetValue(kernel),
                Weight = pr.GetValue(weight),
                EventFilter = pr.GetValue(eventName),
                NameStyle = pr.GetValue(moduleNames) ? FrameNameStyle.ModuleName : FrameNameStyle.UserObj,
            };
            return SampleCommandRunner.RunAsync(pr, options, "fold", (output, symbolizer) => new FoldedWriter(output, symbolizer, fo), ct);
        });
        return cmd;
    }
}
