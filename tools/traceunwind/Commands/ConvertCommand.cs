using System.CommandLine;

namespace TraceUnwind.Cli.Commands;

/// <summary>`traceunwind convert`: not wired yet.</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var cmd = new Command("convert", "(not implemented yet)");
        cmd.SetAction(_ =>
        {
            Console.Error.WriteLine("traceunwind convert: not implemented yet");
            return (int)ExitCode.InputError;
        });
        return cmd;
    }
}
