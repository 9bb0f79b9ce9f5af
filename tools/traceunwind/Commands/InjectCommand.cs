using System.CommandLine;

namespace TraceUnwind.Cli.Commands;

/// <summary>`traceunwind inject`: not wired yet.</summary>
internal static class InjectCommand
{
    public static Command Create()
    {
        var cmd = new Command("inject", "(not implemented yet)");
        cmd.SetAction(_ =>
        {
            Console.Error.WriteLine("traceunwind inject: not implemented yet");
            return (int)ExitCode.InputError;
        });
        return cmd;
    }
}
