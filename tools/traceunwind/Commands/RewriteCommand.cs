using System.CommandLine;

namespace TraceUnwind.Cli.Commands;

/// <summary>`traceunwind rewrite`: not wired yet.</summary>
internal static class RewriteCommand
{
    public static Command Create()
    {
        var cmd = new Command("rewrite", "(not implemented yet)");
        cmd.SetAction(_ =>
        {
            Console.Error.WriteLine("traceunwind rewrite: not implemented yet");
            return (int)ExitCode.InputError;
        });
        return cmd;
    }
}
