namespace TraceUnwind.Output.Internal;

/// <summary>
/// Merge sort of int keys (entry or name ids) by a comparer given as a struct type, so each
/// comparison is a direct, inlinable call (Span.Sort takes comparers through a delegate). Stable;
/// n log n comparisons at most; one scratch array of the same length. Large inputs are sorted as
/// two halves on two threads, then merged (the comparer must allow concurrent calls).
/// </summary>
internal static class IntSort
{
    public interface IComparer
    {
        int Compare(int a, int b);
    }

    /// <summary>Inputs at least this long are sorted on two threads (when there are two CPUs).</summary>
    public const int ParallelFrom = 1 << 14;

    public static void Sort<TComparer>(int[] keys, TComparer comparer) where TComparer : struct, IComparer
    {
        int n = keys.Length;
        if (n < 2) return;
        var scratch = new int[n];
        if (n >= ParallelFrom && Environment.ProcessorCount > 1)
        {
            int half = n / 2;
            var right = Task.Run(() => SortRange(keys, scratch, half, n, comparer));
            SortRange(keys, scratch, 0, half, comparer);
            right.GetAwaiter().GetResult();
            Merge(keys, 0, half, n, scratch, comparer);
            Array.Copy(scratch, keys, n);
            return;
        }
        SortRange(keys, scratch, 0, n, comparer);
    }

    /// <summary>Sorts <c>keys[from..to)</c> in place, using the same range of <paramref name="scratch"/>.</summary>
    private static void SortRange<TComparer>(int[] keys, int[] scratch, int from, int to, TComparer comparer) where TComparer : struct, IComparer
    {
        // Runs of 16 by insertion sort, then merges of doubling width, back and forth between the arrays.
        const int Run = 16;
        for (int lo = from; lo < to; lo += Run) InsertionSort(keys, lo, Math.Min(lo + Run, to), comparer);
        int[] src = keys, dst = scratch;
        for (int width = Run; width < to - from; width *= 2)
        {
            for (int lo = from; lo < to; lo += 2 * width)
            {
                int mid = Math.Min(lo + width, to), hi = Math.Min(lo + 2 * width, to);
                Merge(src, lo, mid, hi, dst, comparer);
            }
            (src, dst) = (dst, src);
        }
        if (src != keys) Array.Copy(src, from, keys, from, to - from);
    }

    private static void InsertionSort<TComparer>(int[] a, int lo, int hi, TComparer comparer) where TComparer : struct, IComparer
    {
        for (int i = lo + 1; i < hi; i++)
        {
            int x = a[i], j = i - 1;
            while (j >= lo && comparer.Compare(a[j], x) > 0)
            {
                a[j + 1] = a[j];
                j--;
            }
            a[j + 1] = x;
        }
    }

    private static void Merge<TComparer>(int[] src, int lo, int mid, int hi, int[] dst, TComparer comparer) where TComparer : struct, IComparer
    {
        if (mid >= hi || comparer.Compare(src[mid - 1], src[mid]) <= 0)
        {
            Array.Copy(src, lo, dst, lo, hi - lo);
            return;
        }
        int i = lo, j = mid, k = lo;
        while (i < mid && j < hi) dst[k++] = comparer.Compare(src[j], src[i]) < 0 ? src[j++] : src[i++];
        if (i < mid) Array.Copy(src, i, dst, k, mid - i);
        else if (j < hi) Array.Copy(src, j, dst, k, hi - j);
    }
}
