using System.CommandLine;

namespace TraceUnwind.Cli.Commands;

/// <summary>`traceunwind fold`: not wired yet.</summary>
internal static class FoldCommand
{
    public static Command Create()
    {
        var cmd = new Command("fold", "(not implemented yet)");
        cmd.SetAction(_ =>
        {
            Console.Error.WriteLine("traceunwind fold: not implemented yet");
            return (int)ExitCode.InputError;
        });
        return cmd;
    }
}
