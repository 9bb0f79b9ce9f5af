using System.CommandLine;
using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Symbols;

namespace TraceUnwind.Cli;

/// <summary>
/// The one pipeline behind script, fold, csv, report and convert: open and sniff the input,
/// pick the front end (perf or ftrace), name frames, run into the command's writer, and end
/// with the error tally on stderr. Exit codes: <see cref="ExitCode"/>.
/// </summary>
internal static class SampleCommandRunner
{
    public static async Task<int> RunAsync(ParseResult parseResult, SampleOptions options, string command,
        Func<Stream, ISymbolizer?, ISampleSink> makeSink, CancellationToken cancellationToken)
    {
        var stderr = CliConsole.Error;
        using var termination = Termination.Watch(cancellationToken);
        cancellationToken = termination.Token;
        string inputPath = parseResult.GetValue(options.Input) ?? InputSource.StdinName;
        var tally = new ErrorTally();

        ISymbolizer? symbolizer;
        try
        {
            symbolizer = SymbolizerFactory.Create(parseResult, options);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or TraceFormatException)
        {
            stderr.WriteLine($"traceunwind {command}: {e.Message}");
            return (int)ExitCode.InputError;
        }

        if (!InputSource.TryOpen(inputPath, command, stderr, out var input))
            return (int)ExitCode.InputError;

        using (input)
        {
            if (input.Format is InputFormat.Empty or InputFormat.Unknown)
            {
                stderr.WriteLine($"traceunwind {command}: '{input.Name}' is not a perf.data file or ftrace text: {input.Describe()}");
                return (int)ExitCode.InputError;
            }

            OutputStream output;
            try
            {
                output = OutputStream.Open(parseResult.GetValue(options.Output));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"traceunwind {command}: cannot write '{parseResult.GetValue(options.Output)}': {e.Message}");
                return (int)ExitCode.InputError;
            }

            using (output)
            using (var progress = Progress.Create(stderr, $"traceunwind {command}: {input.Name}", input.Length))
            {
                ISampleSource source;
                try
                {
                    source = SourceFactory.Create(input, parseResult, options, tally, progress);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or TraceFormatException)
                {
                    stderr.WriteLine($"traceunwind {command}: {e.Message}");
                    return (int)ExitCode.InputError;
                }
                var sink = makeSink(output, symbolizer);
                var code = ExitCode.Ok;
                try
                {
                    await source.RunAsync(sink, cancellationToken).ConfigureAwait(false);
                    sink.Complete();
                }
                catch (OutputClosedException)
                {
                    // `| head` closed the pipe: nothing more can be written, and that is not an error.
                    return (int)ExitCode.Ok;
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    code = ExitCode.Interrupted;
                    TryComplete(sink);
                }
                catch (TraceFormatException e)
                {
                    // The container can't be trusted past this point: keep what was read, say where it broke.
                    TryComplete(sink);
                    progress.Dispose();
                    stderr.WriteLine($"traceunwind {command}: {e.WithSource(input.Name).Message}");
                    code = ExitCode.InputError;
                }
                progress.Dispose();
                tally.WriteSummary(stderr);
                return (int)code;
            }
        }
    }

    private static void TryComplete(ISampleSink sink)
    {
        try { sink.Complete(); }
        catch (OutputClosedException) { }
    }
}
