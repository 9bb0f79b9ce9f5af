using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TraceUnwind.Model;
using TraceUnwind.Processes;

namespace TraceUnwind.Output.Internal;

/// <summary>Renders the key text of a frame (its name, or name plus attributes) into a scratch buffer.</summary>
internal delegate void FrameKeyRenderer(in Frame frame, ArrayBufferWriter<byte> destination);

/// <summary>
/// Frame → dense id of its rendered text. The first time a frame identity is seen its text is
/// rendered and interned (two frames with the same text get the same id); afterwards the id comes
/// from one probe of an open-addressing table, with no allocation and no symbolizer call.
/// <para>
/// The identity is made of values only, no object reference, so the table keeps no mapping (nor
/// the process it belonged to) alive: frame kind and flags, the mapping's identity (its kind,
/// path and, for a file, build id, protection and file offset; interned to a small id) and, for a
/// user frame in a file or <c>[vdso]</c>-like mapping, the offset in it (<c>ip - start</c>), else
/// the address. That is everything a frame's text can depend on: <c>path[+0xOFF]</c> and
/// module names use the path and offset; <c>0x%016lx</c> names use the address; a symbolizer names
/// a file-backed frame from the file and the position in it (path, file offset, protection and
/// build id, and the return-address flag) and a kernel frame from its address. So the same library
/// loaded at another address in another process is one identity, and memory is bounded by the
/// distinct frames, not by the processes or mappings of the input.
/// </para>
/// </summary>
internal sealed class FrameNameCache
{
    private struct Entry
    {
        public ulong Value;
        public int Map;
        public int KindFlags; // 0 = empty slot
        public int Id;
    }

    private struct MapSlot
    {
        public Mapping? Mapping;
        public int Id;
    }

    private readonly ArrayBufferWriter<byte> _scratch = new(256);
    private readonly FrameKeyRenderer _render;
    private Entry[] _entries = new Entry[1024];
    private int _count;
    // Mapping object → identity id, direct-mapped by the object's hash: a hit costs no hashing of
    // the path. Bounded, so it keeps at most this many mappings alive.
    private readonly MapSlot[] _mapCache = new MapSlot[1024];
    private readonly Dictionary<MappingIdentity, int> _mapIds = new();

    public FrameNameCache(FrameKeyRenderer render) => _render = render;

    public NameTable Names { get; } = new();

    /// <summary>Distinct frame identities seen.</summary>
    public int DistinctFrames => _count;

    /// <summary>Distinct mapping identities seen.</summary>
    public int DistinctMappings => _mapIds.Count;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int GetId(in Frame frame)
    {
        var kind = frame.Kind;
        ulong value = frame.Address;
        int map = -1;
        var m = frame.Mapping;
        if (m is not null)
        {
            map = MapId(m);
            if (m.Kind is MappingKind.File or MappingKind.Special && kind is FrameKind.User or FrameKind.GuestUser)
                value = unchecked(value - m.Start);
        }
        int kindFlags = ((int)kind << 8 | (int)frame.Flags) + 1;
        var entries = _entries;
        int mask = entries.Length - 1;
        int i = Hash(value, map, kindFlags) & mask;
        while (true)
        {
            ref var e = ref entries[i];
            if (e.KindFlags == kindFlags && e.Value == value && e.Map == map) return e.Id;
            if (e.KindFlags == 0) return Add(frame, value, map, kindFlags);
            i = (i + 1) & mask;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ulong value, int map, int kindFlags)
    {
        ulong h = (value ^ (ulong)(uint)map << 40 ^ (ulong)(uint)kindFlags << 24) * 0x9E3779B97F4A7C15UL;
        return (int)(h >> 32);
    }

    private int Add(in Frame frame, ulong value, int map, int kindFlags)
    {
        _scratch.ResetWrittenCount();
        _render(frame, _scratch);
        int id = Names.Intern(_scratch.WrittenSpan);
        if ((_count + 1) * 2 > _entries.Length) Grow();
        var entries = _entries;
        int mask = entries.Length - 1;
        int i = Hash(value, map, kindFlags) & mask;
        while (entries[i].KindFlags != 0) i = (i + 1) & mask;
        entries[i] = new Entry { Value = value, Map = map, KindFlags = kindFlags, Id = id };
        _count++;
        return id;
    }

    private void Grow()
    {
        var old = _entries;
        var entries = new Entry[old.Length * 2];
        int mask = entries.Length - 1;
        foreach (var e in old)
        {
            if (e.KindFlags == 0) continue;
            int i = Hash(e.Value, e.Map, e.KindFlags) & mask;
            while (entries[i].KindFlags != 0) i = (i + 1) & mask;
            entries[i] = e;
        }
        _entries = entries;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int MapId(Mapping m)
    {
        ref var slot = ref _mapCache[RuntimeHelpers.GetHashCode(m) & (_mapCache.Length - 1)];
        if (ReferenceEquals(slot.Mapping, m)) return slot.Id;
        return MapIdSlow(m, ref slot);
    }

    private int MapIdSlow(Mapping m, ref MapSlot slot)
    {
        var key = new MappingIdentity(m);
        ref int id = ref CollectionsMarshal.GetValueRefOrAddDefault(_mapIds, key, out bool exists);
        if (!exists) id = _mapIds.Count - 1;
        slot.Mapping = m;
        slot.Id = id;
        return id;
    }

    /// <summary>What of a mapping a frame's text can depend on (see the class remarks); compared by value.</summary>
    private readonly struct MappingIdentity : IEquatable<MappingIdentity>
    {
        private readonly byte[] _path;
        private readonly byte[]? _buildId;
        private readonly ulong _pgOff;
        private readonly uint _prot;
        private readonly MappingKind _kind;

        public MappingIdentity(Mapping m)
        {
            _path = m.PathUtf8;
            _kind = m.Kind;
            if (m.Kind == MappingKind.File)
            {
                _buildId = m.BuildId;
                _pgOff = m.PgOff;
                _prot = m.Prot;
            }
        }

        public bool Equals(MappingIdentity other) =>
            _kind == other._kind && _pgOff == other._pgOff && _prot == other._prot
            && _path.AsSpan().SequenceEqual(other._path)
            && (_buildId ?? []).AsSpan().SequenceEqual(other._buildId ?? []) && (_buildId is null) == (other._buildId is null);

        public override bool Equals(object? obj) => obj is MappingIdentity o && Equals(o);

        public override int GetHashCode()
        {
            var hc = new HashCode();
            hc.AddBytes(_path);
            hc.Add(_pgOff);
            hc.Add(_prot);
            hc.Add(_kind);
            if (_buildId is not null) hc.AddBytes(_buildId);
            return hc.ToHashCode();
        }
    }
}
