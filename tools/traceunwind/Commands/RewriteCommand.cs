using System.CommandLine;
using System.Globalization;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Pipeline;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Symbols;

namespace TraceUnwind.Cli.Commands;

/// <summary>
/// <c>traceunwind rewrite [FILE|-] [--maps PATH]... [--keep-address] [--symbols] [-o FILE]</c>:
/// ftrace text in, the same text out with user frames written <c>path[+0xOFF]</c> as the
/// kernel's sym-userobj prints them. Wiring only; the work is <see cref="FtraceRewriter"/>.
/// </summary>
internal static class RewriteCommand
{
    /// <summary>
    /// Makes the user-space symbolizer <c>--symbols</c> needs (the ELF <c>.symtab</c>/<c>.dynsym</c>
    /// reader of TraceUnwind.Unwinding). Null until the integrator plugs it in; <c>--symbols</c>
    /// then reports that it is not available.
    /// </summary>
    internal static Func<string?, ErrorTally, ISymbolizer>? UserSymbolizerFactory { get; set; }

    /// <summary>
    /// Reads a perf.data's side-band records into a timeline for <c>--perf</c>: MMAP/MMAP2 →
    /// <see cref="MapsTimeline.Mmap"/>, COMM with PERF_RECORD_MISC_COMM_EXEC → <see cref="MapsTimeline.Exec"/>,
    /// FORK → <see cref="MapsTimeline.Fork"/>, EXIT → <see cref="MapsTimeline.Exit"/>, each at the record's
    /// sample time (ns, perf's clock). Null until the integrator plugs in the perf front end;
    /// <c>--perf</c> then reports that it is not available.
    /// </summary>
    internal static Func<string, ErrorTally, CancellationToken, Task<IMapsTimeline>>? PerfTimelineLoader { get; set; }

    private static readonly Argument<string> InputArgument = new("input")
    {
        Description = "ftrace text: a `trace` or `trace_pipe` copy, `trace-cmd report` output; - or nothing reads stdin",
        Arity = ArgumentArity.ZeroOrOne,
        DefaultValueFactory = _ => "-",
    };

    private static readonly Option<string[]> MapsOption = new("--maps")
    {
        HelpName = "PATH",
        Description = "maps snapshots instead of live /proc: a file of sections headed '==> /proc/PID/maps <==' or " +
                      "'==> /proc/TGID/task/TID/maps <==' (what `tail -n +1 /proc/[0-9]*/maps` prints), each optionally " +
                      "followed by ' @ SECONDS' in the trace's clock; or a directory of such files. Repeatable.",
    };

    private static readonly Option<string?> PerfOption = new("--perf")
    {
        HelpName = "FILE",
        Description = "address spaces from the MMAP/MMAP2/COMM/FORK/EXIT records of a perf.data recorded alongside " +
                      "(perf record -a -e dummy -k CLOCK ...), looked up at each event's time",
    };

    private static readonly Option<string?> ClockOffsetOption = new("--clock-offset")
    {
        HelpName = "SECONDS",
        Description = "SECONDS to subtract from the trace's timestamps to get perf's (ftrace time minus perf time; " +
                      "0 when both use the same clock: trace_clock mono + perf -k CLOCK_MONOTONIC, or trace_clock perf)",
    };

    private static readonly Option<bool> KeepAddressOption = new("--keep-address")
    {
        Description = "write the sym-addr form 'path[+0xOFF] <00007f...>' (the kernel's sym-userobj + sym-addr)",
    };

    private static readonly Option<bool> SymbolsOption = new("--symbols")
    {
        Description = "append ' symbol+0xoff' from the ELF symbol tables to each rewritten frame",
    };

    private static readonly Option<string?> SymfsOption = new("--symfs")
    {
        Description = "with --symbols: read the ELF files under DIR (perf's --symfs: DIR joined with the recorded path)",
        HelpName = "DIR",
    };

    private static readonly Option<string?> OutputOption = new("--output", "-o")
    {
        HelpName = "FILE",
        Description = "write here instead of stdout",
    };

    private static readonly Option<int> MaxLineOption = new("--max-line-length")
    {
        HelpName = "N",
        Description = "longer lines pass through unchanged and are counted",
        DefaultValueFactory = _ => LineFramer.DefaultMaxLineLength,
    };

    private static readonly Option<bool> StatsOption = new("--stats")
    {
        Description = "print what was rewritten to stderr at the end",
    };

    private static readonly Option<string> ProcRootOption = new("--proc-root")
    {
        Description = "where the live source reads PID/maps and PID/status (default /proc)",
        DefaultValueFactory = _ => "/proc",
        Hidden = true,
    };

    public static Command Create()
    {
        var cmd = new Command("rewrite",
            "Rewrite ftrace user stacks (' =>  <00007f...>') as the kernel's sym-userobj prints them (' => /path[+0xOFF]'); every other byte passes through. " +
            "Example: sudo cat /sys/kernel/tracing/trace_pipe | traceunwind rewrite");
        cmd.Arguments.Add(InputArgument);
        cmd.Options.Add(MapsOption);
        cmd.Options.Add(PerfOption);
        cmd.Options.Add(ClockOffsetOption);
        cmd.Options.Add(KeepAddressOption);
        cmd.Options.Add(SymbolsOption);
        cmd.Options.Add(SymfsOption);
        cmd.Options.Add(OutputOption);
        cmd.Options.Add(MaxLineOption);
        cmd.Options.Add(StatsOption);
        cmd.Options.Add(ProcRootOption);
        cmd.Validators.Add(r =>
        {
            if (r.GetValue(PerfOption) is not null && r.GetValue(MapsOption) is { Length: > 0 })
                r.AddError("--perf and --maps are two sources of address spaces: give one");
            if (r.GetValue(ClockOffsetOption) is { } off && r.GetValue(PerfOption) is null)
                r.AddError("--clock-offset applies to --perf");
            if (r.GetValue(SymfsOption) is not null && !r.GetValue(SymbolsOption))
                r.AddError("--symfs applies to --symbols");
            if (r.GetValue(ClockOffsetOption) is { } o && !TryParseSeconds(o, out _))
                r.AddError($"--clock-offset: '{o}' is not a number of seconds (e.g. 0.03042 or -1.5)");
        });
        MaxLineOption.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 256) r.AddError("--max-line-length must be at least 256 (the kernel prints lines of up to 8 KiB)");
        });
        cmd.SetAction(async (parseResult, ct) =>
        {
            string? output = parseResult.GetValue(OutputOption);
            // Standard streams on their descriptors (CliConsole), not through System.Console: on Ctrl-C the
            // runtime raises CancelKeyPress (System.CommandLine then waits for this action) while holding the
            // console's lock, which Console streams take on every write: the final flush would wait out the
            // termination timeout instead of writing what was read. Tests redirect them with CliConsole.Use.
            await using var stdout = output is null ? CliConsole.OpenStdout() : null;
            await using var stderrStream = CliConsole.IsRedirected ? null : CliConsole.OpenFd(2, FileAccess.Write);
            await using var stderr = stderrStream is null ? null : new StreamWriter(stderrStream) { AutoFlush = true };
            // Ctrl-C / SIGTERM: stop reading, write out what was read, exit 130.
            using var interrupt = Termination.Watch(ct);
            return await RunAsync(
                parseResult.GetValue(InputArgument) ?? "-",
                parseResult.GetValue(MapsOption) ?? [],
                parseResult.GetValue(PerfOption),
                TryParseSeconds(parseResult.GetValue(ClockOffsetOption) ?? "0", out long offsetNs) ? offsetNs : 0,
                parseResult.GetValue(KeepAddressOption),
                parseResult.GetValue(SymbolsOption),
                parseResult.GetValue(SymfsOption),
                output,
                parseResult.GetValue(MaxLineOption),
                parseResult.GetValue(StatsOption),
                parseResult.GetValue(ProcRootOption) ?? "/proc",
                null, stdout, (TextWriter?)stderr ?? CliConsole.Error, interrupt.Token).ConfigureAwait(false);
        });
        return cmd;
    }

    /// <summary>
    /// The command's work, testable with any streams: <paramref name="stdin"/> (null: the process's, through
    /// <see cref="CliConsole"/>) is read for <c>-</c>, <paramref name="stdout"/> written unless
    /// <paramref name="outputPath"/> is given.
    /// </summary>
    internal static async Task<int> RunAsync(string input, string[] maps, string? perf, long clockOffsetNs, bool keepAddress, bool symbols, string? symfs,
        string? outputPath, int maxLineLength, bool stats, string procRoot, Stream? stdin, Stream? stdout, TextWriter stderr, CancellationToken ct)
    {
        var tally = new ErrorTally();
        IMapsSource source;
        try
        {
            if (perf is not null)
            {
                if (PerfTimelineLoader is null)
                {
                    await stderr.WriteLineAsync("traceunwind rewrite: --perf: perf.data side-band reading is not wired in this build").ConfigureAwait(false);
                    return (int)ExitCode.UsageError;
                }
                source = new TimelineMapsSource(await PerfTimelineLoader(perf, tally, ct).ConfigureAwait(false), clockOffsetNs);
            }
            else
            {
                source = maps.Length > 0 ? MapsSnapshotReader.Load(maps, tally) : new LiveProcMaps(procRoot);
            }
        }
        catch (TraceFormatException ex)
        {
            // The perf reader names the file and the byte offset; the snapshot reader the file and line.
            await stderr.WriteLineAsync($"traceunwind rewrite: {(perf is not null ? "--perf" : "--maps")}: {ex.WithSource(perf).Message}").ConfigureAwait(false);
            return (int)ExitCode.InputError;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return (int)ExitCode.Interrupted;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"traceunwind rewrite: {(perf is not null ? "--perf" : "--maps")}: {ex.Message}").ConfigureAwait(false);
            return (int)ExitCode.InputError;
        }
        ISymbolizer? symbolizer = null;
        if (symbols)
        {
            if (UserSymbolizerFactory is null)
            {
                await stderr.WriteLineAsync("traceunwind rewrite: --symbols: no ELF symbolizer in this build").ConfigureAwait(false);
                return (int)ExitCode.UsageError;
            }
            symbolizer = UserSymbolizerFactory(symfs, tally);
        }

        InputSource inputSource;
        try
        {
            // A file, or stdin (fd 0, so that `< trace.txt` stays seekable: two passes for --maps),
            // sniffed: binary inputs are refused with what they look like. The sniff waits for the first
            // bytes of a pipe; Ctrl-C before they come ends the run at once (the read is left behind).
            inputSource = await Task.Run(() => InputSource.Open(input, stdin), CancellationToken.None).WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return (int)ExitCode.Interrupted;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"traceunwind rewrite: cannot open '{input}': {ex.Message}").ConfigureAwait(false);
            return (int)ExitCode.InputError;
        }
        using var _in = inputSource;
        if (ct.IsCancellationRequested) return (int)ExitCode.Interrupted;   // Ctrl-C while the first bytes arrived
        if (Refusal(inputSource) is { } refusal)
        {
            await stderr.WriteLineAsync($"traceunwind rewrite: '{inputSource.Name}' {refusal}").ConfigureAwait(false);
            return (int)ExitCode.InputError;
        }

        Stream outStream;
        try
        {
            outStream = outputPath is null ? stdout ?? CliConsole.OpenStdout() : new FileStream(outputPath, FileMode.Create, FileAccess.Write, FileShare.Read, 1);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await stderr.WriteLineAsync($"traceunwind rewrite: cannot write '{outputPath}': {ex.Message}").ConfigureAwait(false);
            return (int)ExitCode.InputError;
        }

        RewriteResult result;
        try
        {
            result = await FtraceRewriter.RunAsync(inputSource.Stream, outStream,
                new RewriteOptions { Maps = source, KeepAddress = keepAddress, Symbolizer = symbolizer, MaxLineLength = maxLineLength },
                tally, inputSource.Name, ct).ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            await stderr.WriteLineAsync($"traceunwind rewrite: {inputSource.Name}: {ex.Message}").ConfigureAwait(false);
            return (int)ExitCode.InputError;
        }
        finally
        {
            if (outputPath is not null) await outStream.DisposeAsync().ConfigureAwait(false);
        }
        if (stats)
        {
            var s = result.Statistics;
            await stderr.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"traceunwind rewrite: {result.Lines} lines, {s.UserFrames} user frames: {s.Rewritten} rewritten, {s.LeftRaw} left raw, " +
                $"{s.Corrected} corrected, {s.AlreadyResolved} already resolved, {s.WithoutContext} without pid; {result.ExecsScanned} execs scanned")).ConfigureAwait(false);
        }
        tally.WriteSummary(stderr);
        return result.End switch
        {
            PipelineEnd.Canceled => (int)ExitCode.Interrupted,
            _ => (int)ExitCode.Ok,   // a closed stdout (| head) ends the run quietly
        };
    }

    /// <summary>Parses <c>[-]SECONDS[.FRACTION]</c> into ns, exactly (no floating point).</summary>
    internal static bool TryParseSeconds(string text, out long ns)
    {
        ns = 0;
        var t = text.Trim();
        bool negative = t.StartsWith('-');
        if (negative || t.StartsWith('+')) t = t[1..];
        if (!TraceUnwind.Ftrace.Parsing.TraceTimestamp.TryParseDecimal(System.Text.Encoding.ASCII.GetBytes(t), out ulong whole, out ulong frac, out _)
            || whole > (ulong)(long.MaxValue / 1_000_000_000L) - 1)
            return false;
        ns = (long)(whole * 1_000_000_000UL + frac);
        if (negative) ns = -ns;
        return true;
    }

    /// <summary>Why rewrite does not read this input (it reads text), or null for text.</summary>
    private static string? Refusal(InputSource input) => input.Format switch
    {
        InputFormat.Text => null,
        InputFormat.PerfFile or InputFormat.PerfPipe =>
            "is perf.data; rewrite reads ftrace text (use `traceunwind script` for perf.data, or give it to rewrite with --perf)",
        InputFormat.Empty => "is empty: no ftrace text to rewrite",
        _ => $"is not ftrace text: {input.Describe()}",
    };
}
