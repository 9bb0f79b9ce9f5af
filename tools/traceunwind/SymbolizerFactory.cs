using System.CommandLine;
using TraceUnwind.Symbols;
using TraceUnwind.Unwinding.Modules;

namespace TraceUnwind.Cli;

/// <summary>Builds the frame namer's symbol sources from <c>--kallsyms</c> and <c>--symbols</c>/<c>--symfs</c>.</summary>
internal static class SymbolizerFactory
{
    public static ISymbolizer? Create(ParseResult parseResult, SampleOptions options)
    {
        var parts = new List<ISymbolizer>();
        if (parseResult.GetValue(options.Kallsyms) is { } kallsyms)
            parts.Add(KallsymsSymbolizer.Load(kallsyms));
        if (parseResult.GetValue(options.Symbols))
            parts.Add(ElfSymbols(parseResult.GetValue(options.Symfs)));
        return parts.Count switch
        {
            0 => null,
            1 => parts[0],
            _ => new CompositeSymbolizer(parts.ToArray()),
        };
    }

    // Its own cache of ELF files, not the unwinder's: on inputs read on two threads the unwinder runs on
    // the reading thread and the symbolizer on the writing one, and the cache is not thread-safe.
    private static ISymbolizer ElfSymbols(string? symfs) => new ElfSymbolizer(symfs);
}
