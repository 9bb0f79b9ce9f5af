using System.CommandLine;
using TraceUnwind.Perf.Deferred;
using TraceUnwind.Unwinding;

namespace TraceUnwind.Cli;

/// <summary>
/// The options every sample-producing command shares (script, fold, csv, report, convert):
/// what to read, where to write, how to name and unwind frames, how to join deferred stacks.
/// A new instance per command (System.CommandLine options belong to one command).
/// </summary>
internal sealed class SampleOptions
{
    public readonly Argument<string> Input = new("input")
    {
        Description = "perf.data (file or pipe mode, -z too) or ftrace text (trace, trace_pipe, trace-cmd report); - or nothing reads stdin",
        Arity = ArgumentArity.ZeroOrOne,
        DefaultValueFactory = _ => InputSource.StdinName,
    };

    public readonly Option<string?> Output = new("--output", "-o")
    {
        Description = "Write to FILE instead of stdout",
        HelpName = "FILE",
    };

    public readonly Option<string?> Kallsyms = new("--kallsyms")
    {
        Description = "Name kernel frames from this copy of /proc/kallsyms (symbol+0xoff); without it kernel frames are hex",
        HelpName = "FILE",
    };

    public readonly Option<bool> Symbols = new("--symbols")
    {
        Description = "Name user frames from the ELF files' .symtab/.dynsym (at the recorded path, or under --symfs)",
    };

    public readonly Option<string?> Symfs = new("--symfs")
    {
        Description = "Look for ELF files under DIR (as perf's --symfs)",
        HelpName = "DIR",
    };

    public readonly Option<string> Unwind = new Option<string>("--unwind")
    {
        Description = "How to unwind --call-graph dwarf samples: auto (SFrame where the module has it, frame pointers elsewhere), sframe, fp, none",
        DefaultValueFactory = _ => "auto",
    }.AcceptOnlyFromAmong("auto", "sframe", "fp", "none");

    /// <summary>The parsed <see cref="Unwind"/> value.</summary>
    public UnwindMode GetUnwindMode(ParseResult parseResult) => parseResult.GetValue(Unwind) switch
    {
        "sframe" => UnwindMode.SFrame,
        "fp" => UnwindMode.FramePointer,
        "none" => UnwindMode.None,
        _ => UnwindMode.Auto,
    };

    public readonly Option<bool> NoMerge = new("--no-merge")
    {
        Description = "Do not join deferred user callchains: samples end in their cookie and each PERF_RECORD_CALLCHAIN_DEFERRED " +
            "shows on its own (perf's --no-merge-callchains). By default a sample is joined with its thread's deferred user stack",
    };

    public readonly Option<int> MaxPending = new("--max-pending")
    {
        Description = "Cap on samples waiting for their deferred user stack, and on threads whose last deferred stack is kept; " +
            "a sample pushed out is shown with [deferred user stack lost], and both are counted in the summary",
        DefaultValueFactory = _ => DefaultMaxPending,
        HelpName = "N",
    };

    public const int DefaultMaxPending = 65536;

    /// <summary>The joiner's caps from <see cref="MaxPending"/>.</summary>
    public DeferredJoinOptions GetJoinOptions(ParseResult parseResult)
    {
        int n = parseResult.GetValue(MaxPending);
        return new DeferredJoinOptions { MaxPendingSamples = n, MaxCachedStacks = n };
    }

    public readonly Option<string[]> Maps = new("--maps")
    {
        Description = "ftrace input: /proc/PID/maps snapshots (files with '==> /proc/PID/maps <==' sections, or a directory of them)",
        HelpName = "PATH",
        AllowMultipleArgumentsPerToken = false,
    };

    public void AddTo(Command command)
    {
        command.Arguments.Add(Input);
        command.Options.Add(Output);
        command.Options.Add(Kallsyms);
        command.Options.Add(Symbols);
        command.Options.Add(Symfs);
        command.Options.Add(Unwind);
        command.Options.Add(NoMerge);
        command.Options.Add(MaxPending);
        command.Options.Add(Maps);
        MaxPending.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1) r.AddError("--max-pending must be at least 1");
        });
    }
}
