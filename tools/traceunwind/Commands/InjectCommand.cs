using System.CommandLine;
using TraceUnwind.Diagnostics;
using TraceUnwind.Perf.Deferred;
using TraceUnwind.Perf.Inject;

namespace TraceUnwind.Cli.Commands;

/// <summary>
/// <c>traceunwind inject IN -o OUT</c>: a file-mode perf.data in which every sample has an ordinary
/// callchain (deferred user stacks joined in), for tools that know nothing of deferral (perf &lt;= 6.18).
/// </summary>
internal static class InjectCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input")
        {
            Description = "perf.data with deferred user callchains (file or pipe mode, -z too); - or nothing reads stdin",
            Arity = ArgumentArity.ZeroOrOne,
            DefaultValueFactory = _ => InputSource.StdinName,
        };

        var output = new Option<string>("--output", "-o")
        {
            Description = "The perf.data to write (file mode: it must be a file, not stdout)",
            HelpName = "FILE",
            Required = true,
        };

        var maxPending = new Option<int>("--max-pending")
        {
            Description = "Cap on samples waiting for their deferred user stack, and on threads whose last deferred stack is kept; " +
                "a sample pushed out ends at its kernel part, and both are counted in the summary",
            DefaultValueFactory = _ => SampleOptions.DefaultMaxPending,
            HelpName = "N",
        };
        var cmd = new Command("inject",
            "Write a perf.data whose deferred user callchains are ordinary ones (deferred records removed, defer bits cleared), for perf <= 6.18.");
        cmd.Arguments.Add(input);
        cmd.Options.Add(output);
        cmd.Options.Add(maxPending);
        maxPending.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1) r.AddError("--max-pending must be at least 1");
        });
        cmd.SetAction((pr, ct) => RunAsync(pr.GetValue(input) ?? InputSource.StdinName, pr.GetValue(output)!, pr.GetValue(maxPending), ct));
        return cmd;
    }

    public static async Task<int> RunAsync(string inputPath, string outputPath, int maxPending, CancellationToken cancellationToken)
    {
        var stderr = CliConsole.Error;
        if (outputPath == "-")
        {
            stderr.WriteLine("traceunwind inject: a file-mode perf.data is written with seeks (its header comes last): give -o FILE, not stdout");
            return (int)ExitCode.UsageError;
        }
        if (inputPath != InputSource.StdinName && File.Exists(outputPath) && File.Exists(inputPath)
            && Path.GetFullPath(outputPath) == Path.GetFullPath(inputPath))
        {
            stderr.WriteLine($"traceunwind inject: the output '{outputPath}' is the input: write to another file");
            return (int)ExitCode.UsageError;
        }

        if (!InputSource.TryOpen(inputPath, "inject", stderr, out var input))
            return (int)ExitCode.InputError;

        using (input)
        {
            if (input.Format is not (InputFormat.PerfFile or InputFormat.PerfPipe))
            {
                stderr.WriteLine($"traceunwind inject: '{input.Name}' is not a perf.data file: {input.Describe()}");
                return (int)ExitCode.InputError;
            }

            // Written next to the destination and moved over it at the end: a failed run leaves no half file.
            string full = Path.GetFullPath(outputPath);
            string temp = Path.Combine(Path.GetDirectoryName(full) ?? ".", $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
            var tally = new ErrorTally();
            var injector = new PerfInjector(new PerfInjectOptions
            {
                Join = new DeferredJoinOptions { MaxPendingSamples = maxPending, MaxCachedStacks = maxPending },
            }, tally);
            PerfInjectResult result;
            try
            {
                await using (var output = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16))
                    result = await injector.RunAsync(input.Stream, input.Name, output, cancellationToken).ConfigureAwait(false);
                File.Move(temp, full, overwrite: true);
            }
            catch (Exception e) when (e is TraceFormatException or IOException or UnauthorizedAccessException or OperationCanceledException)
            {
                TryDelete(temp);
                if (e is OperationCanceledException) return (int)ExitCode.Interrupted;
                string what = e is TraceFormatException t ? t.WithSource(input.Name).Message : $"cannot write '{outputPath}': {e.Message}";
                stderr.WriteLine($"traceunwind inject: {what}");
                tally.WriteSummary(stderr);
                return (int)ExitCode.InputError;
            }

            var j = result.Join;
            stderr.WriteLine($"traceunwind inject: wrote {outputPath}: {result.RecordsWritten} records; {j.DeferredSamples} samples with a deferred user " +
                $"callchain: {j.JoinedLater} joined, {j.JoinedEarlier} joined with an earlier record of their cookie, {j.Lost} lost (ending at their kernel part); " +
                $"{result.DeferredRecordsRemoved} deferred records left out");
            tally.WriteSummary(stderr);
            return (int)ExitCode.Ok;
        }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
