using System.CommandLine;
using TraceUnwind.Cli.Commands;

namespace TraceUnwind.Cli;

public static class Program
{
    public static int Main(string[] args) => Run(args);

    /// <summary>Parses and runs; a bad command line prints its errors and exits with <see cref="ExitCode.UsageError"/>.</summary>
    public static int Run(string[] args)
    {
        var parseResult = BuildRoot().Parse(args);
        if (parseResult.Errors.Count > 0)
        {
            foreach (var error in parseResult.Errors)
                CliConsole.Error.WriteLine($"traceunwind: {error.Message}");
            CliConsole.Error.WriteLine("Try 'traceunwind --help' or 'traceunwind COMMAND --help'.");
            return (int)ExitCode.UsageError;
        }
        if (!CliConsole.IsRedirected) return parseResult.Invoke();
        // Redirected (tests): help and System.CommandLine's own messages go to the redirected streams too.
        var output = new StreamWriter(CliConsole.OpenStdout(), leaveOpen: true);
        try
        {
            return parseResult.Invoke(new InvocationConfiguration { Output = output, Error = CliConsole.Error });
        }
        finally
        {
            try { output.Dispose(); }
            catch (IOException) { }   // a closed stdout: the command has already ended quietly
        }
    }

    /// <summary>The command tree; each command wires its own options in its <c>Create()</c>.</summary>
    public static RootCommand BuildRoot()
    {
        // rewrite's hooks into the other libraries (the ftrace front end knows no perf.data and no ELF).
        RewriteCommand.PerfTimelineLoader ??= PerfSideband.LoadAsync;
        RewriteCommand.UserSymbolizerFactory ??= (symfs, _) => new TraceUnwind.Unwinding.Modules.ElfSymbolizer(symfs);
        var root = new RootCommand(
            "TraceUnwind: turns Linux trace captures (perf.data, ftrace text) into stacks people can read.\n" +
            "User frames are written path[+0xOFF] exactly as the kernel's ftrace sym-userobj option prints them.");
        root.Subcommands.Add(ScriptCommand.Create());
        root.Subcommands.Add(FoldCommand.Create());
        root.Subcommands.Add(CsvCommand.Create());
        root.Subcommands.Add(ReportCommand.Create());
        root.Subcommands.Add(ConvertCommand.Create());
        root.Subcommands.Add(RewriteCommand.Create());
        root.Subcommands.Add(InjectCommand.Create());
        root.Subcommands.Add(SFrameCommand.Create());
        return root;
    }
}
