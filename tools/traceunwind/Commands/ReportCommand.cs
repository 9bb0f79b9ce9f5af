using System.CommandLine;

namespace TraceUnwind.Cli.Commands;

/// <summary>`traceunwind report`: not wired yet.</summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var cmd = new Command("report", "(not implemented yet)");
        cmd.SetAction(_ =>
        {
            Console.Error.WriteLine("traceunwind report: not implemented yet");
            return (int)ExitCode.InputError;
        });
        return cmd;
    }
}
