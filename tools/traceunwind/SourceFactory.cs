using System.CommandLine;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Model;
using TraceUnwind.Perf;
using TraceUnwind.Perf.Deferred;
using TraceUnwind.Unwinding;

namespace TraceUnwind.Cli;

/// <summary>Chooses the front end for a sniffed input: perf.data or ftrace text, both producing the one sample model.</summary>
internal static class SourceFactory
{
    public static ISampleSource Create(InputSource input, ParseResult parseResult, SampleOptions options, ErrorTally tally, Progress progress) =>
        input.Format switch
        {
            InputFormat.PerfFile or InputFormat.PerfPipe => CreatePerf(input, parseResult, options, tally, progress),
            InputFormat.Text => CreateFtrace(input, parseResult, options, tally, progress),
            _ => throw new InvalidOperationException($"no front end for {input.Format}"),
        };

    /// <summary>
    /// ftrace text: user frames get the mapping the kernel's find_vma rule gives in the address space of the
    /// event's process — from <c>--maps</c> snapshots at the event's time, else live from /proc.
    /// </summary>
    private static FtraceSampleSource CreateFtrace(InputSource input, ParseResult parseResult, SampleOptions options, ErrorTally tally, Progress progress)
    {
        var maps = parseResult.GetValue(options.Maps) ?? [];
        IMapsSource source = maps.Length > 0 ? MapsSnapshotReader.Load(maps, tally) : new LiveProcMaps();
        return new FtraceSampleSource(progress.Wrap(input.Stream), input.Name, new FtraceSampleSourceOptions { Maps = source, CompleteSink = false }, tally);
    }

    private static PerfSampleSource CreatePerf(InputSource input, ParseResult parseResult, SampleOptions options, ErrorTally tally, Progress progress)
    {
        bool noMerge = parseResult.GetValue(options.NoMerge);
        var perfOptions = new PerfReadOptions
        {
            Progress = progress.Enabled ? (bytes, samples) => progress.Report(bytes, samples) : null,
            // --no-merge is perf's --no-merge-callchains: samples keep their cookie, the deferred records show on their own.
            EmitDeferredCallchains = noMerge,
            RecordStage = noMerge ? null : DeferredCallchainJoiner.Stage(tally, options.GetJoinOptions(parseResult)),
        };
        var mode = options.GetUnwindMode(parseResult);
        if (mode != UnwindMode.None)
            perfOptions.Unwinder = new UserStackUnwinder(mode, parseResult.GetValue(options.Symfs), tally);
        return new PerfSampleSource(input.Stream, input.Name, perfOptions, tally);
    }
}
