using System.Runtime.CompilerServices;
using TraceUnwind.Model;
using TraceUnwind.Processes;

namespace TraceUnwind.Output.Internal;

/// <summary>
/// The identity of a frame for caching its rendered name: everything a name depends on
/// (address, the very <see cref="Mapping"/> object, kind, flags). Mappings are compared by
/// reference: they are immutable and shared by the front ends, so equal references mean equal
/// names, and a split mapping (a new object) only costs one more cache entry.
/// </summary>
internal readonly struct FrameKey : IEquatable<FrameKey>
{
    private readonly ulong _address;
    private readonly Mapping? _mapping;
    private readonly int _kindAndFlags;

    public FrameKey(in Frame frame)
    {
        _address = frame.Address;
        _mapping = frame.Mapping;
        _kindAndFlags = (int)frame.Kind << 8 | (int)frame.Flags;
    }

    public bool Equals(FrameKey other) =>
        _address == other._address && ReferenceEquals(_mapping, other._mapping) && _kindAndFlags == other._kindAndFlags;

    public override bool Equals(object? obj) => obj is FrameKey k && Equals(k);

    public override int GetHashCode() =>
        HashCode.Combine(_address, _mapping is null ? 0 : RuntimeHelpers.GetHashCode(_mapping), _kindAndFlags);
}
