using TraceUnwind.Output.Internal;

namespace TraceUnwind.Output.Tests;

/// <summary>The merge sort behind fold's line order: the same order as a stable sort, every length.</summary>
public class IntSortTests
{
    private readonly struct ByValue(int[] values) : IntSort.IComparer
    {
        public int Compare(int a, int b) => values[a].CompareTo(values[b]);
    }

    [Fact]
    public void SortsLikeAStableSort()
    {
        var rng = new Random(3);
        foreach (int n in new[] { 0, 1, 2, 15, 16, 17, 31, 33, 100, 1000, 4097, IntSort.ParallelFrom, IntSort.ParallelFrom * 3 + 7 })
        {
            var values = Enumerable.Range(0, n).Select(_ => rng.Next(0, Math.Max(1, n / 3))).ToArray(); // many ties
            var keys = Enumerable.Range(0, n).ToArray();
            IntSort.Sort(keys, new ByValue(values));
            var want = Enumerable.Range(0, n).OrderBy(i => values[i]).ToArray(); // LINQ OrderBy is stable
            Assert.Equal(want, keys);
        }
    }
}
