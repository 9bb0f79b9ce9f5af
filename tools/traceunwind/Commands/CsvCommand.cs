using System.CommandLine;

namespace TraceUnwind.Cli.Commands;

/// <summary>`traceunwind csv`: not wired yet.</summary>
internal static class CsvCommand
{
    public static Command Create()
    {
        var cmd = new Command("csv", "(not implemented yet)");
        cmd.SetAction(_ =>
        {
            Console.Error.WriteLine("traceunwind csv: not implemented yet");
            return (int)ExitCode.InputError;
        });
        return cmd;
    }
}
