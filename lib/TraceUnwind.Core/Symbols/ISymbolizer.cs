using TraceUnwind.Model;

namespace TraceUnwind.Symbols;

/// <summary>A symbol found for an address: <c>Name+0xOffset</c>.</summary>
public readonly record struct SymbolHit(string Name, ulong Offset);

/// <summary>
/// Names frames. Implementations: kernel symbols from a kallsyms file, user symbols from ELF
/// <c>.symtab</c>/<c>.dynsym</c> (the unwinding library). Outputs take one optionally; front ends never do.
/// </summary>
public interface ISymbolizer
{
    /// <summary>Looks up <see cref="Frame.LookupAddress"/>; the offset is from the symbol start to <see cref="Frame.Address"/>.</summary>
    bool TryResolve(in Frame frame, out SymbolHit hit);
}

/// <summary>Asks several symbolizers in turn.</summary>
public sealed class CompositeSymbolizer(params ISymbolizer[] parts) : ISymbolizer
{
    public bool TryResolve(in Frame frame, out SymbolHit hit)
    {
        foreach (var p in parts)
            if (p.TryResolve(frame, out hit)) return true;
        hit = default;
        return false;
    }
}
