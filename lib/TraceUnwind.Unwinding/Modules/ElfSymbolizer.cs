using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Symbols;

namespace TraceUnwind.Unwinding.Modules;

/// <summary>
/// Names user frames <c>symbol+0xoff</c> from the ELF file behind their mapping (<c>.symtab</c>; for a
/// stripped file the <c>.symtab</c> of its debug file, found by build id or <c>.gnu_debuglink</c>;
/// else <c>.dynsym</c>), opened through an <see cref="ElfFileCache"/> (recorded path or symfs root,
/// build id checked). The file-relative address is
/// <c>vaddr = ip - mapping.Start + mapping.PgOff - (p_offset - p_vaddr)</c> of the PT_LOAD mapped
/// there; a return address is looked up one byte back (<see cref="Frame.LookupAddress"/>) and the
/// offset is counted to the address itself. No allocation per frame once a mapping and a
/// symbol's name have been seen.
/// </summary>
public sealed class ElfSymbolizer : ISymbolizer
{
    private readonly ElfFileCache _files;
    private readonly Dictionary<Mapping, (ElfModule? Module, ulong Bias)> _bindings = new(ReferenceEqualityComparer.Instance);

    /// <param name="symfs">Root directory the files are read under (perf's <c>--symfs</c>), or null.</param>
    public ElfSymbolizer(string? symfs = null)
        : this(new ElfFileCache(symfs))
    {
    }

    /// <param name="files">A cache shared with the unwinder.</param>
    public ElfSymbolizer(ElfFileCache files)
    {
        ArgumentNullException.ThrowIfNull(files);
        _files = files;
    }

    /// <inheritdoc />
    public bool TryResolve(in Frame frame, out SymbolHit hit)
    {
        hit = default;
        if (frame.Kind is not (FrameKind.User or FrameKind.GuestUser) || frame.Mapping is not { IsFileBacked: true } m) return false;
        ulong lookup = frame.LookupAddress;
        if (!m.Contains(lookup)) return false;
        if (!_bindings.TryGetValue(m, out var b))
        {
            if (_bindings.Count >= 65536) _bindings.Clear();
            var module = _files.Get(m);
            ulong bias = 0;
            if (module is not null && module.File.TryGetLoadDelta(m.PgOff, m.IsExecutable, (m.Prot & Mapping.ProtWrite) != 0, out ulong delta))
                bias = unchecked(m.Start - m.PgOff + delta);
            else module = null;
            b = (module, bias);
            _bindings[m] = b;
        }
        var symbols = b.Module?.Symbols;
        if (symbols is null) return false;
        ulong vaddr = unchecked(lookup - b.Bias);
        if (!symbols.TryFind(vaddr, out int i)) return false;
        hit = new SymbolHit(symbols.NameOf(i), unchecked(frame.Address - b.Bias - symbols.StartOf(i)));
        return true;
    }
}
