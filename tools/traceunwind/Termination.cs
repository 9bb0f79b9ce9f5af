using System.Runtime.InteropServices;

namespace TraceUnwind.Cli;

/// <summary>
/// Ctrl-C and SIGTERM for every command: the first signal cancels the returned token so the command
/// stops reading, writes out what it has (folded totals, the partial block) and exits 130; a second
/// signal takes the default action. (System.CommandLine 2.0.0's Invoke leaves SIGINT at the default
/// action here, which kills the process without a flush: dotnet-trace's ProcessTerminationHandler is
/// the model.)
/// </summary>
internal sealed class Termination : IDisposable
{
    private readonly CancellationTokenSource _cts;
    private readonly PosixSignalRegistration _sigint;
    private readonly PosixSignalRegistration _sigterm;

    private Termination(CancellationToken outer)
    {
        _cts = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
    }

    /// <summary>Cancelled by the first SIGINT/SIGTERM, or when <paramref name="outer"/> is.</summary>
    public CancellationToken Token => _cts.Token;

    public static Termination Watch(CancellationToken outer) => new(outer);

    private void OnSignal(PosixSignalContext context)
    {
        if (_cts.IsCancellationRequested) return;
        context.Cancel = true;
        _cts.Cancel();
    }

    public void Dispose()
    {
        _sigint.Dispose();
        _sigterm.Dispose();
        _cts.Dispose();
    }
}
