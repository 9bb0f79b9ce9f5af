namespace TraceUnwind.Testing;

/// <summary>
/// Allocation measurement for the "no allocation per sample" tests. The runtime itself sometimes
/// allocates once on the test's thread in the middle of a run (a generic static or a pool the
/// framework fills when tiered code first touches it, while other tests run beside it): that shows
/// in one round, while an allocation per sample shows in every round. So a body is measured several
/// times and the least is taken.
/// </summary>
public static class Allocations
{
    /// <summary>The least of <paramref name="rounds"/> measurements of what <paramref name="body"/> allocates on this thread.</summary>
    public static long LeastOf(int rounds, Action body)
    {
        long least = long.MaxValue;
        for (int r = 0; r < rounds; r++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            body();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return least;
    }
}
