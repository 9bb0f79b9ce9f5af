using System.CommandLine;
using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Perf;
using TraceUnwind.Unwinding;

namespace TraceUnwind.Cli;

/// <summary>Chooses the front end for a sniffed input: perf.data or ftrace text, both producing the one sample model.</summary>
internal static class SourceFactory
{
    public static ISampleSource Create(InputSource input, ParseResult parseResult, SampleOptions options, ErrorTally tally, Progress progress) =>
        input.Format switch
        {
            InputFormat.PerfFile or InputFormat.PerfPipe => CreatePerf(input, parseResult, options, tally, progress),
            InputFormat.Text => throw new NotSupportedException("ftrace front end not wired yet"),
            _ => throw new InvalidOperationException($"no front end for {input.Format}"),
        };

    private static PerfSampleSource CreatePerf(InputSource input, ParseResult parseResult, SampleOptions options, ErrorTally tally, Progress progress)
    {
        var perfOptions = new PerfReadOptions
        {
            Progress = progress.Enabled ? (bytes, samples) => progress.Report(bytes, samples) : null,
            EmitDeferredCallchains = parseResult.GetValue(options.NoMerge),
        };
        var mode = options.GetUnwindMode(parseResult);
        if (mode != UnwindMode.None)
            perfOptions.Unwinder = new UserStackUnwinder(mode, parseResult.GetValue(options.Symfs), tally);
        return new PerfSampleSource(input.Stream, input.Name, perfOptions, tally);
    }
}
