namespace TraceUnwind.Cli;

/// <summary>Process exit codes (dotnet-trace's ReturnCode shape).</summary>
public enum ExitCode
{
    /// <summary>Done. Skipped or damaged records, if any, are summarized on stderr.</summary>
    Ok = 0,
    /// <summary>The input could not be read at all (missing file, wrong format, container damaged beyond use).</summary>
    InputError = 1,
    /// <summary>Bad command line (unknown option, invalid value).</summary>
    UsageError = 2,
    /// <summary>Stopped by SIGINT/SIGTERM after flushing what was done (128 + SIGINT).</summary>
    Interrupted = 130,
}
