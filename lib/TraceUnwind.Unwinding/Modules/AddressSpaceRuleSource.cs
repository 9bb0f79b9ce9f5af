using System.Runtime.CompilerServices;
using TraceUnwind.Processes;

namespace TraceUnwind.Unwinding.Modules;

/// <summary>Counters of an <see cref="AddressSpaceRuleSource"/>'s rule cache.</summary>
public readonly record struct RuleCacheStats(long Hits, long Misses, long NoModule);

/// <summary>
/// Rules for the code of one process: the mapping holding an address (from the process's
/// <see cref="AddressSpace"/>), the ELF file behind it (<see cref="ElfFileCache"/>), the file-relative
/// address (<c>vaddr = ip - start + pgoff - (p_offset - p_vaddr)</c> of the PT_LOAD mapped there),
/// and the SFrame row for it, through a direct-mapped cache keyed by (module, vaddr) so that the
/// same code in any process is looked up once (framehop's <c>RuleCache</c>). Nothing is allocated
/// per lookup once a mapping has been seen.
/// </summary>
public sealed class AddressSpaceRuleSource : IUnwindRuleSource
{
    private const int CacheBits = 12;

    private readonly ElfFileCache _files;
    private readonly Dictionary<Mapping, Binding> _bindings = new(ReferenceEqualityComparer.Instance);
    private readonly ElfModule?[] _cacheModule = new ElfModule?[1 << CacheBits];
    private readonly ulong[] _cachePc = new ulong[1 << CacheBits];
    private readonly FrameRule[] _cacheRule = new FrameRule[1 << CacheBits];
    private readonly RuleLookup[] _cacheStatus = new RuleLookup[1 << CacheBits];
    private AddressSpace? _maps;
    private Mapping? _lastMapping;
    private Binding _lastBinding;
    private int _lastGeneration;
    private long _hits, _misses, _noModule;

    private readonly record struct Binding(ElfModule? Module, ulong Bias);

    public AddressSpaceRuleSource(ElfFileCache files)
    {
        ArgumentNullException.ThrowIfNull(files);
        _files = files;
    }

    public ElfFileCache Files => _files;

    /// <summary>The address space lookups use (set it per sample; a different one or a changed generation drops the last-mapping shortcut).</summary>
    public AddressSpace? Maps
    {
        get => _maps;
        set
        {
            if (!ReferenceEquals(value, _maps)) _lastMapping = null;
            _maps = value;
        }
    }

    public RuleCacheStats Stats => new(_hits, _misses, _noModule);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Mapping? FindMapping(ulong pc)
    {
        var maps = _maps;
        if (maps is null) return null;
        var last = _lastMapping;
        if (last is not null && _lastGeneration == maps.Generation && pc - last.Start < last.End - last.Start) return last;
        var m = maps.Find(pc);
        if (m is not null)
        {
            _lastMapping = m;
            _lastGeneration = maps.Generation;
            _lastBinding = GetBinding(m);
        }
        return m;
    }

    private Binding GetBinding(Mapping m)
    {
        if (_bindings.TryGetValue(m, out var b)) return b;
        if (_bindings.Count >= 65536) _bindings.Clear();
        var module = _files.Get(m);
        ulong bias = 0;
        if (module is not null)
        {
            // vaddr = ip - start + pgoff - (p_offset - p_vaddr)  =>  vaddr = ip - bias
            if (module.File.TryGetLoadDelta(m.PgOff, m.IsExecutable, (m.Prot & Mapping.ProtWrite) != 0, out ulong delta))
                bias = unchecked(m.Start - m.PgOff + delta);
            else
                module = null;
        }
        b = new Binding(module, bias);
        _bindings[m] = b;
        return b;
    }

    /// <inheritdoc />
    public RuleLookup TryGetRule(ulong pc, out FrameRule rule, out Mapping? mapping)
    {
        rule = default;
        mapping = FindMapping(pc);
        if (mapping is null) { _noModule++; return RuleLookup.NotFound; }
        var binding = ReferenceEquals(mapping, _lastMapping) ? _lastBinding : GetBinding(mapping);
        var module = binding.Module;
        if (module is null) { _noModule++; return RuleLookup.NotFound; }
        ulong vaddr = unchecked(pc - binding.Bias);

        int slot = (int)((vaddr * 0x9E3779B97F4A7C15UL) >> (64 - CacheBits));
        if (ReferenceEquals(_cacheModule[slot], module) && _cachePc[slot] == vaddr)
        {
            _hits++;
            rule = _cacheRule[slot];
            return _cacheStatus[slot];
        }
        _misses++;
        var sframe = module.SFrame;
        RuleLookup status;
        if (sframe is null) status = module.SFrameError is null ? RuleLookup.NotFound : RuleLookup.BadUnwindInfo;
        else status = sframe.TryGetRule(vaddr, out rule) ? RuleLookup.Found : RuleLookup.NotFound;
        _cacheModule[slot] = module;
        _cachePc[slot] = vaddr;
        _cacheRule[slot] = rule;
        _cacheStatus[slot] = status;
        return status;
    }

    /// <inheritdoc />
    public bool IsCodeAddress(ulong address) => FindMapping(address) is { IsExecutable: true };

    /// <inheritdoc />
    public bool IsFunctionEntry(ulong pc) =>
        TryGetModule(pc, out var module, out ulong vaddr)
        && module!.Symbols is { } symbols && symbols.TryFind(vaddr, out int i) && symbols.StartOf(i) == vaddr;

    /// <summary>The module and file-relative address for <paramref name="pc"/>, if a file backs it.</summary>
    public bool TryGetModule(ulong pc, out ElfModule? module, out ulong vaddr)
    {
        module = null;
        vaddr = 0;
        var m = FindMapping(pc);
        if (m is null) return false;
        var b = GetBinding(m);
        module = b.Module;
        vaddr = unchecked(pc - b.Bias);
        return module is not null;
    }
}
