using System.Buffers.Binary;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Unwinding.Elf;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>A stack image built word by word for synthetic tests (marked synthetic in fixtures/README.md).</summary>
internal sealed class StackImage
{
    private readonly byte[] _bytes;

    public StackImage(ulong low, int size, bool bigEndian)
    {
        Low = low;
        _bytes = new byte[size];
        BigEndian = bigEndian;
    }

    public ulong Low { get; }
    public bool BigEndian { get; }
    public ulong High => Low + (ulong)_bytes.Length;

    public void Put(ulong address, ulong value)
    {
        var s = _bytes.AsSpan((int)(address - Low), 8);
        if (BigEndian) BinaryPrimitives.WriteUInt64BigEndian(s, value); else BinaryPrimitives.WriteUInt64LittleEndian(s, value);
    }

    /// <summary>The bytes from <paramref name="sp"/> to the top, as perf's STACK_USER would copy them.</summary>
    public ReadOnlySpan<byte> From(ulong sp) => _bytes.AsSpan((int)(sp - Low));
}

/// <summary>Mappings for fixture binaries loaded at a bias, and helpers to read chains.</summary>
internal static class Synthetic
{
    public static AddressSpace Load(string fixture, ulong bias)
    {
        var path = Testing.Fixtures.Path("sframe", fixture);
        var maps = new AddressSpace();
        foreach (var m in StackcapTests.LoadMappings(ElfFile.Load(path), path, bias)) maps.Insert(m);
        return maps;
    }

    public static ulong[] Addresses(ReadOnlySpan<Frame> frames)
    {
        var a = new ulong[frames.Length];
        for (int i = 0; i < a.Length; i++) a[i] = frames[i].Address;
        return a;
    }
}

/// <summary>A rule source that returns fixed rules per address range (for unit tests of the walker's checks).</summary>
internal sealed class StubRules : IUnwindRuleSource
{
    private readonly List<(ulong Start, ulong End, FrameRule Rule)> _rules = new();
    private readonly Mapping _code;

    public StubRules(ulong codeStart = 0x400000, ulong codeEnd = 0x500000) =>
        _code = new Mapping(codeStart, codeEnd, 0, "/stub", Mapping.ProtRead | Mapping.ProtExec);

    public StubRules Add(ulong start, ulong end, FrameRule rule)
    {
        _rules.Add((start, end, rule));
        return this;
    }

    public RuleLookup TryGetRule(ulong pc, out FrameRule rule, out Mapping? mapping)
    {
        mapping = _code.Contains(pc) ? _code : null;
        foreach (var (s, e, r) in _rules)
            if (pc >= s && pc < e) { rule = r; return RuleLookup.Found; }
        rule = default;
        return RuleLookup.NotFound;
    }

    public bool IsCodeAddress(ulong address) => _code.Contains(address);

    public bool IsFunctionEntry(ulong pc) => false;
}
