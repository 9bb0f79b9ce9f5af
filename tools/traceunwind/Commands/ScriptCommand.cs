using System.CommandLine;

namespace TraceUnwind.Cli.Commands;

/// <summary>`traceunwind script`: not wired yet.</summary>
internal static class ScriptCommand
{
    public static Command Create()
    {
        var cmd = new Command("script", "(not implemented yet)");
        cmd.SetAction(_ =>
        {
            Console.Error.WriteLine("traceunwind script: not implemented yet");
            return (int)ExitCode.InputError;
        });
        return cmd;
    }
}
