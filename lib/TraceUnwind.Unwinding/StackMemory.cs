using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace TraceUnwind.Unwinding;

/// <summary>
/// Memory the unwinder may read: one word at an address, or "not readable". The same core runs
/// over a captured stack (perf <c>--call-graph dwarf</c>), a snapshot in a test, or any other
/// source (framehop's <c>read_stack</c> callback). Implementations are structs (ref structs
/// allowed), passed by reference as a type argument, so a read is a direct, inlinable call.
/// </summary>
public interface IStackMemory
{
    /// <summary>Reads the 8-byte word at <paramref name="address"/> in the target's byte order.</summary>
    bool TryReadWord(ulong address, out ulong value);
}

/// <summary>
/// Stack bytes captured from the user SP upward (perf's PERF_SAMPLE_STACK_USER: <c>dyn_size</c>
/// bytes from <c>regs[SP]</c>): address <c>Base + i</c> is byte <c>i</c>. Anything outside is unreadable.
/// </summary>
public readonly ref struct StackSnapshot : IStackMemory
{
    private readonly ReadOnlySpan<byte> _bytes;
    private readonly bool _bigEndian;

    public StackSnapshot(ulong baseAddress, ReadOnlySpan<byte> bytes, bool bigEndian)
    {
        Base = baseAddress;
        _bytes = bytes;
        _bigEndian = bigEndian;
    }

    /// <summary>The address of the first captured byte (the sampled SP).</summary>
    public ulong Base { get; }
    public int Length => _bytes.Length;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadWord(ulong address, out ulong value)
    {
        // One unsigned subtraction: an address below Base wraps to a huge offset and fails the same test.
        ulong off = unchecked(address - Base);
        if (_bytes.Length < 8 || off > (ulong)(_bytes.Length - 8))
        {
            value = 0;
            return false;
        }
        var s = _bytes.Slice((int)off, 8);
        value = _bigEndian ? BinaryPrimitives.ReadUInt64BigEndian(s) : BinaryPrimitives.ReadUInt64LittleEndian(s);
        return true;
    }
}
