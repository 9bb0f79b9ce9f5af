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
    // 16 bytes: the value, a tag packing mapping identity, kind and flags (never 0), and the name id.
    private struct Entry
    {
        public ulong Value;
        public int Tag;     // 0 = empty slot
        public int Id;
    }

    private struct MapSlot
    {
        public Mapping? Mapping;
        public int Id;
    }

    // Tags: (mapping identity + 1) << 8 | 0x80 | kind << 2 | flags. Identities past MaxPackedMap, or
    // kinds and flags that do not fit 5 bits (neither seen in practice), go to a dictionary instead.
    private const int MaxPackedMap = (1 << 23) - 2;

    private readonly ArrayBufferWriter<byte> _scratch = new(256);
    private readonly FrameKeyRenderer _render;
    private Entry[] _entries = new Entry[1024];
    private int _count;
    private Dictionary<(ulong, int, int), int>? _overflow;
    // Mapping object → identity id, direct-mapped by the object's hash: a hit costs no hashing of
    // the path. Bounded, so it keeps at most this many mappings alive.
    private readonly MapSlot[] _mapCache = new MapSlot[1024];
    private Mapping? _lastMapping;
    private int _lastMapId;
    private readonly Dictionary<MappingIdentity, int> _mapIds = new();

    public FrameNameCache(FrameKeyRenderer render) => _render = render;

    public NameTable Names { get; } = new();

    /// <summary>Distinct frame identities seen.</summary>
    public int DistinctFrames => _count + (_overflow?.Count ?? 0);

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
        int kindFlags = (int)kind << 2 | (int)frame.Flags;
        if (map > MaxPackedMap || kindFlags > 0x1f) return GetOverflowId(frame, value, map);
        int tag = (map + 1) << 8 | 0x80 | kindFlags;
        var entries = _entries;
        int mask = entries.Length - 1;
        int i = Hash(value, tag) & mask;
        while (true)
        {
            ref var e = ref entries[i];
            if (e.Tag == tag && e.Value == value) return e.Id;
            if (e.Tag == 0) return Add(frame, value, tag);
            i = (i + 1) & mask;
        }
    }

    /// <summary>
    /// The ids of <paramref name="frames"/>, outermost (last) first, into <paramref name="ids"/>
    /// (cookie frames skipped, as fold and the JSON writers skip them); returns how many. Keys are made
    /// and their table slots prefetched for the whole stack first, so the probes' cache misses overlap.
    /// </summary>
    public int GetIdsOutermostFirst(ReadOnlySpan<Frame> frames, Span<int> ids)
    {
        if (_keys.Length < frames.Length) _keys = new Key[Math.Max(frames.Length, _keys.Length * 2)];
        var keys = _keys.AsSpan(0, frames.Length);
        var entries = _entries;
        int mask = entries.Length - 1;
        int n = 0;
        for (int i = frames.Length - 1; i >= 0; i--)
        {
            ref readonly var frame = ref frames[i];
            var kind = frame.Kind;
            if (kind == FrameKind.DeferredCookie) continue;
            ulong value = frame.Address;
            int map = -1;
            var m = frame.Mapping;
            if (m is not null)
            {
                map = MapId(m);
                if (m.Kind is MappingKind.File or MappingKind.Special && kind is FrameKind.User or FrameKind.GuestUser)
                    value = unchecked(value - m.Start);
            }
            int kindFlags = (int)kind << 2 | (int)frame.Flags;
            ref var k = ref keys[n++];
            k.Frame = i;
            if (map > MaxPackedMap || kindFlags > 0x1f)
            {
                k.Tag = 0; // the dictionary's: looked up in the second pass
                k.Value = value;
                k.Map = map;
                continue;
            }
            k.Tag = (map + 1) << 8 | 0x80 | kindFlags;
            k.Value = value;
            k.Slot = Hash(value, k.Tag) & mask;
            Prefetch(ref entries[k.Slot]);
        }
        for (int j = 0; j < n; j++)
        {
            ref var k = ref keys[j];
            if (k.Tag == 0)
            {
                ids[j] = GetOverflowId(frames[k.Frame], k.Value, k.Map);
                continue;
            }
            if (!ReferenceEquals(entries, _entries))
            {
                // A new frame grew the table: slots move.
                entries = _entries;
                mask = entries.Length - 1;
                for (int r = j; r < n; r++) if (keys[r].Tag != 0) keys[r].Slot = Hash(keys[r].Value, keys[r].Tag) & mask;
            }
            int s = k.Slot;
            while (true)
            {
                ref var e = ref entries[s];
                if (e.Tag == k.Tag && e.Value == k.Value) { ids[j] = e.Id; break; }
                if (e.Tag == 0) { ids[j] = Add(frames[k.Frame], k.Value, k.Tag); break; }
                s = (s + 1) & mask;
            }
        }
        return n;
    }

    private struct Key
    {
        public ulong Value;
        public int Tag, Slot, Frame, Map;
    }

    private Key[] _keys = new Key[256];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Prefetch(ref Entry e)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref e));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ulong value, int tag) => (int)(((value ^ (ulong)(uint)tag << 32) * 0x9E3779B97F4A7C15UL) >> 32);

    private int Render(in Frame frame)
    {
        _scratch.ResetWrittenCount();
        _render(frame, _scratch);
        return Names.Intern(_scratch.WrittenSpan);
    }

    private int Add(in Frame frame, ulong value, int tag)
    {
        int id = Render(frame);
        // At most 70% full: linear probing stays short, and 16-byte entries keep the table small.
        if ((_count + 1) * 10 > _entries.Length * 7) Grow();
        var entries = _entries;
        int mask = entries.Length - 1;
        int i = Hash(value, tag) & mask;
        while (entries[i].Tag != 0) i = (i + 1) & mask;
        entries[i] = new Entry { Value = value, Tag = tag, Id = id };
        _count++;
        return id;
    }

    private int GetOverflowId(in Frame frame, ulong value, int map)
    {
        var key = (value, map, (int)frame.Kind << 8 | (int)frame.Flags);
        _overflow ??= new();
        if (_overflow.TryGetValue(key, out int id)) return id;
        id = Render(frame);
        _overflow.Add(key, id);
        return id;
    }

    private void Grow()
    {
        var old = _entries;
        var entries = new Entry[old.Length * 2];
        int mask = entries.Length - 1;
        foreach (var e in old)
        {
            if (e.Tag == 0) continue;
            int i = Hash(e.Value, e.Tag) & mask;
            while (entries[i].Tag != 0) i = (i + 1) & mask;
            entries[i] = e;
        }
        _entries = entries;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int MapId(Mapping m)
    {
        // Runs of frames share a mapping (all kernel frames, a library's frames): check the last one first.
        if (ReferenceEquals(m, _lastMapping)) return _lastMapId;
        ref var slot = ref _mapCache[RuntimeHelpers.GetHashCode(m) & (_mapCache.Length - 1)];
        int id = ReferenceEquals(slot.Mapping, m) ? slot.Id : MapIdSlow(m, ref slot);
        _lastMapping = m;
        _lastMapId = id;
        return id;
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
