using System.Runtime.CompilerServices;
namespace TraceUnwind.Processes;

/// <summary>
/// The mappings of one process, sorted by address and never overlapping, like the kernel's
/// VMA tree: inserting a mapping cuts away whatever it covers (an <c>mmap(MAP_FIXED)</c> over an
/// older mapping, ld.so's whole-file map followed by its segments, perf's
/// <c>maps__fixup_overlappings</c>). Lookups first check the mapping the previous lookup found
/// (consecutive frames of a stack mostly fall in one mapping), then binary-search: the list itself
/// for up to 32 mappings, else a flat array of mapping ends behind a small cache by page. Only the
/// first lookup after a change may allocate (it rebuilds those arrays, reusing their room); the
/// others allocate nothing. Not thread-safe, lookups included: they update those caches.
/// </summary>
public sealed class AddressSpace
{
    // Sorted by Start; pairwise disjoint, so End is sorted too.
    private readonly List<Mapping> _maps;
    // Lookup view of _maps, rebuilt on the first lookup after a change: the ends in a flat array, so
    // the binary search touches no Mapping object but the one it lands on.
    private ulong[] _ends = [];
    private int _viewCount;
    private bool _viewStale = true;
    // The mapping the last lookup found (consecutive frames of a stack mostly fall in the same one),
    // with its bounds, so a hit touches no Mapping object; empty when _lastEnd == _lastStart.
    private Mapping? _lastHit;
    private ulong _lastStart, _lastEnd;
    // Mappings recently found, by page of the address looked up (a small direct-mapped cache: the
    // return addresses of a process's stacks repeat); made with the lookup view (spaces of more than
    // SmallSpace mappings), cleared on a change.
    private Recent[]? _recent;
    private const int RecentSlots = 64;
    // Spaces of up to this many mappings are searched in the list itself (no view, no page cache).
    private const int SmallSpace = 32;

    private struct Recent
    {
        public ulong Start, End;
        public Mapping? Mapping;
    }

    public AddressSpace() => _maps = new List<Mapping>();

    private AddressSpace(List<Mapping> maps) => _maps = maps;

    /// <summary>Changes on every insert or removal, so caches keyed by address can tell they are stale.</summary>
    public int Generation
    {
        get => _generation;
        private set
        {
            _generation = value;
            _lastHit = null;
            _lastStart = _lastEnd = 0;
            _viewStale = true;
            if (_recent is not null) Array.Clear(_recent);
        }
    }

    private int _generation;

    public int Count => _maps.Count;

    public IReadOnlyList<Mapping> Mappings => _maps;

    /// <summary>A copy for a forked child (mappings are immutable and shared).</summary>
    public AddressSpace Clone() => new(new List<Mapping>(_maps)) { Generation = Generation };

    public void Clear()
    {
        _maps.Clear();
        Generation++;
    }

    /// <summary>Adds <paramref name="mapping"/>, removing or trimming every older mapping it overlaps.</summary>
    public void Insert(Mapping mapping)
    {
        Generation++;
        if (mapping.End == mapping.Start) return;
        // First mapping whose End is above the new Start: the first that can overlap.
        int i = FirstEndAbove(mapping.Start);
        while (i < _maps.Count && _maps[i].Start < mapping.End)
        {
            var old = _maps[i];
            _maps.RemoveAt(i);
            if (old.Start < mapping.Start)
                _maps.Insert(i++, old.Slice(old.Start, mapping.Start));
            if (old.End > mapping.End)
            {
                _maps.Insert(i, old.Slice(mapping.End, old.End));
                break;
            }
        }
        _maps.Insert(i, mapping);
    }

    /// <summary>Removes every part of <c>[start, end)</c> (munmap).</summary>
    public void Remove(ulong start, ulong end)
    {
        if (end <= start) return;
        Generation++;
        int i = FirstEndAbove(start);
        while (i < _maps.Count && _maps[i].Start < end)
        {
            var old = _maps[i];
            _maps.RemoveAt(i);
            if (old.Start < start) _maps.Insert(i++, old.Slice(old.Start, start));
            if (old.End > end) { _maps.Insert(i, old.Slice(end, old.End)); break; }
        }
    }

    /// <summary>The mapping that contains <paramref name="address"/>, if any.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public Mapping? Find(ulong address)
    {
        if (unchecked(address - _lastStart) < unchecked(_lastEnd - _lastStart)) return _lastHit;
        return FindSearch(address);
    }

    private Mapping? FindSearch(ulong address)
    {
        Mapping m;
        if (_maps.Count <= SmallSpace)
        {
            // Few mappings (most processes: perf records executable mappings only): search the list,
            // keep no lookup arrays.
            int k = FirstEndAbove(address);
            if (k == _maps.Count || (m = _maps[k]).Start > address) return null;
            _lastStart = m.Start;
            _lastEnd = m.End;
            return _lastHit = m;
        }
        if (_viewStale) RebuildView();
        ref var slot = ref _recent![(int)(address >> 12) & (RecentSlots - 1)];
        if (unchecked(address - slot.Start) < unchecked(slot.End - slot.Start))
        {
            _lastStart = slot.Start;
            _lastEnd = slot.End;
            return _lastHit = slot.Mapping;
        }
        int i = FirstEndAbove(_ends, _viewCount, address);
        if (i < _viewCount && (m = _maps[i]).Start <= address)
        {
            slot = new Recent { Start = m.Start, End = m.End, Mapping = m };
            _lastStart = m.Start;
            _lastEnd = m.End;
            return _lastHit = m;
        }
        return null;
    }

    private void RebuildView()
    {
        int n = _maps.Count;
        if (_ends.Length < n) _ends = new ulong[Math.Max(n, _ends.Length * 2)];
        for (int i = 0; i < n; i++) _ends[i] = _maps[i].End;
        _viewCount = n;
        _recent ??= new Recent[RecentSlots];
        _viewStale = false;
    }

    /// <summary>The first index in <c>ends[..count]</c> whose end is above <paramref name="address"/> (branch-free halving).</summary>
    private static int FirstEndAbove(ulong[] ends, int count, ulong address)
    {
        if (count == 0) return 0;
        var e = ends.AsSpan(0, count);
        int lo = 0, n = count;
        while (n > 1)
        {
            int half = n >> 1;
            lo = e[lo + half - 1] <= address ? lo + half : lo;
            n -= half;
        }
        return e[lo] <= address ? lo + 1 : lo;
    }

    /// <summary>
    /// The kernel's <c>find_vma(mm, addr)</c>: the first mapping whose end is above
    /// <paramref name="address"/>. It need not contain the address (an address in a gap gets
    /// the next mapping up); ftrace's sym-userobj prints <c>ip - vm_start</c> of it, wrapped.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public Mapping? FindVma(ulong address)
    {
        if (_viewStale) RebuildView();
        int i = FirstEndAbove(_ends, _viewCount, address);
        return i < _viewCount ? _maps[i] : null;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int FirstEndAbove(ulong address)
    {
        int lo = 0, hi = _maps.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_maps[mid].End > address) hi = mid; else lo = mid + 1;
        }
        return lo;
    }
}
