using System.CommandLine;
using TraceUnwind.Diagnostics;
using TraceUnwind.Model;

namespace TraceUnwind.Cli;

/// <summary>Chooses the front end for a sniffed input: perf.data or ftrace text, both producing the one sample model.</summary>
internal static class SourceFactory
{
    public static ISampleSource Create(InputSource input, ParseResult parseResult, SampleOptions options, ErrorTally tally, Progress progress) =>
        input.Format switch
        {
            InputFormat.PerfFile or InputFormat.PerfPipe => throw new NotSupportedException("perf.data front end not wired yet"),
            InputFormat.Text => throw new NotSupportedException("ftrace front end not wired yet"),
            _ => throw new InvalidOperationException($"no front end for {input.Format}"),
        };
}
