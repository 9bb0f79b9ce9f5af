using System.CommandLine;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Cli.Commands;

/// <summary>
/// <c>traceunwind sframe ELF...</c>: the SFrame section in <c>objdump --sframe</c>'s layout (so the
/// two can be diffed), or <c>--json</c>; then the kernel's validation verdict on stderr.
/// </summary>
internal static class SFrameCommand
{
    private static readonly Option<bool> JsonOption = new("--json")
    {
        Description = "Print a machine-readable decode (header, every FDE and FRE, raw data words and rules) instead of objdump's layout",
    };

    private static readonly Argument<string[]> ElfArgument = new("elf")
    {
        Description = "ELF files (executables, shared objects, objects) with a .sframe section or PT_GNU_SFRAME segment",
        Arity = ArgumentArity.OneOrMore,
    };

    public static Command Create()
    {
        var cmd = new Command("sframe",
            "Print the .sframe section of ELF files in objdump --sframe's layout (or --json) and check it as the kernel would.");
        cmd.Options.Add(JsonOption);
        cmd.Arguments.Add(ElfArgument);
        cmd.SetAction(parseResult =>
        {
            var files = parseResult.GetValue(ElfArgument) ?? [];
            using var output = OutputStream.Open(null);
            using var stdout = new StreamWriter(output, new System.Text.UTF8Encoding(false), 1 << 16);
            try
            {
                int failed = SFrameReport.Run(stdout, CliConsole.Error, files, parseResult.GetValue(JsonOption));
                stdout.Flush();
                return (int)(failed == 0 ? ExitCode.Ok : ExitCode.InputError);
            }
            catch (OutputClosedException)
            {
                return (int)ExitCode.Ok; // `| head` closed the pipe
            }
        });
        return cmd;
    }
}
