using System.Runtime.CompilerServices;
namespace TraceUnwind.Ftrace.Maps;

/// <summary>A small least-recently-used map with a fixed capacity, so per-process caches stay bounded on endless input.</summary>
internal sealed class LruCache<TKey, TValue> where TKey : notnull
{
    private readonly Dictionary<TKey, LinkedListNode<(TKey Key, TValue Value)>> _map = new();
    private readonly LinkedList<(TKey Key, TValue Value)> _order = new();

    private readonly Action<TKey, TValue>? _onEvict;

    public LruCache(int capacity, Action<TKey, TValue>? onEvict = null)
    {
        Capacity = Math.Max(1, capacity);
        _onEvict = onEvict;
    }

    public int Capacity { get; }
    public int Count => _map.Count;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool TryGet(TKey key, out TValue value)
    {
        if (_map.TryGetValue(key, out var node))
        {
            if (node != _order.First)
            {
                _order.Remove(node);
                _order.AddFirst(node);
            }
            value = node.Value.Value;
            return true;
        }
        value = default!;
        return false;
    }

    public void Set(TKey key, TValue value)
    {
        if (_map.TryGetValue(key, out var node))
        {
            node.Value = (key, value);
            if (node != _order.First)
            {
                _order.Remove(node);
                _order.AddFirst(node);
            }
            return;
        }
        if (_map.Count >= Capacity)
        {
            var last = _order.Last!;
            _order.RemoveLast();
            _map.Remove(last.Value.Key);
            _onEvict?.Invoke(last.Value.Key, last.Value.Value);
            // Reuse the evicted node: no allocation once the cache is full.
            last.Value = (key, value);
            _order.AddFirst(last);
            _map.Add(key, last);
            return;
        }
        _map.Add(key, _order.AddFirst((key, value)));
    }

    public bool Remove(TKey key)
    {
        if (!_map.Remove(key, out var node)) return false;
        _order.Remove(node);
        return true;
    }
}
