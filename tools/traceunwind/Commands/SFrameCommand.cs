using System.CommandLine;

namespace TraceUnwind.Cli.Commands;

/// <summary>`traceunwind sframe`: not wired yet.</summary>
internal static class SFrameCommand
{
    public static Command Create()
    {
        var cmd = new Command("sframe", "(not implemented yet)");
        cmd.SetAction(_ =>
        {
            Console.Error.WriteLine("traceunwind sframe: not implemented yet");
            return (int)ExitCode.InputError;
        });
        return cmd;
    }
}
