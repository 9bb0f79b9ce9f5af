using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Unwinding.Arch;
using TraceUnwind.Unwinding.Modules;

namespace TraceUnwind.Unwinding;

/// <summary>
/// Unwinds perf <c>--call-graph dwarf</c> samples: registers from PERF_SAMPLE_REGS_USER (in the
/// architecture's perf register layout), memory from PERF_SAMPLE_STACK_USER (address = SP + index),
/// modules from the process's <see cref="AddressSpace"/>, ELF files at the recorded path or under a
/// symfs root (build id checked when the capture has one), rules from SFrame and/or the
/// frame-pointer convention per <see cref="UnwindMode"/>. One instance per pipeline (not
/// thread-safe); <see cref="Unwind"/> allocates nothing once the modules it meets are loaded.
/// </summary>
public sealed class UserStackUnwinder : IUserStackUnwinder
{
    private readonly AddressSpaceRuleSource _rules;
    private readonly Unwinder?[] _unwinders = new Unwinder?[4];
    private readonly ErrorTally? _tally;

    /// <param name="mode"><c>--unwind</c>: auto (SFrame where the module has it, frame pointers elsewhere), sframe, fp, none.</param>
    /// <param name="symfs"><c>--symfs</c>: root directory ELF files are read under, or null for the recorded paths.</param>
    /// <param name="tally">Where missing files, build-id mismatches and refused SFrame sections are counted.</param>
    /// <param name="maxDepth">Most frames per sample.</param>
    public UserStackUnwinder(UnwindMode mode = UnwindMode.Auto, string? symfs = null, ErrorTally? tally = null, int maxDepth = 512)
        : this(mode, new ElfFileCache(symfs, tally), tally, maxDepth)
    {
    }

    /// <param name="mode"><c>--unwind</c> mode.</param>
    /// <param name="files">A shared file cache (the ELF symbolizer can use the same one).</param>
    /// <param name="tally">Where problems are counted.</param>
    /// <param name="maxDepth">Most frames per sample.</param>
    public UserStackUnwinder(UnwindMode mode, ElfFileCache files, ErrorTally? tally = null, int maxDepth = 512)
    {
        Mode = mode;
        MaxDepth = maxDepth;
        _rules = new AddressSpaceRuleSource(files);
        _tally = tally;
    }

    public UnwindMode Mode { get; }
    public int MaxDepth { get; }
    public ElfFileCache Files => _rules.Files;
    public RuleCacheStats CacheStats => _rules.Stats;

    /// <inheritdoc />
    public int Unwind(in CapturedUserStack stack, AddressSpace maps, Span<Frame> frames, out UnwindStop stop)
    {
        var arch = ArchDescriptor.For(stack.Arch);
        // PERF_SAMPLE_REGS_ABI_64 only: no registers (abi 0, a kernel thread) or a 32-bit task.
        if (arch is null || stack.Abi != 2
            || !UnwindRegisters.TryFromPerf(arch, stack.RegsMask, stack.Regs, out var regs))
        {
            stop = UnwindStop.NoRegisters;
            if (stack.Abi != 0 && arch is null) _tally?.Count("unwind.arch-unsupported");
            return 0;
        }
        var unwinder = _unwinders[(int)stack.Arch] ??= new Unwinder(arch, Mode, MaxDepth);
        _rules.Maps = maps;
        var memory = new StackSnapshot(regs.Sp, stack.Stack, arch.IsBigEndian);
        return unwinder.Walk(ref memory, _rules, in regs, frames, out stop);
    }

    /// <summary>
    /// Unwinds from explicit registers and stack bytes (captured at <c>regs.Sp</c>): the same walk,
    /// for callers that are not perf samples (snapshots, tests, benchmarks).
    /// </summary>
    public int Unwind(UnwindArch archId, in UnwindRegisters regs, ReadOnlySpan<byte> stackFromSp, AddressSpace maps,
        Span<Frame> frames, out UnwindStop stop)
    {
        var arch = ArchDescriptor.For(archId);
        if (arch is null) { stop = UnwindStop.NoRegisters; return 0; }
        var unwinder = _unwinders[(int)archId] ??= new Unwinder(arch, Mode, MaxDepth);
        _rules.Maps = maps;
        var memory = new StackSnapshot(regs.Sp, stackFromSp, arch.IsBigEndian);
        return unwinder.Walk(ref memory, _rules, in regs, frames, out stop);
    }
}
