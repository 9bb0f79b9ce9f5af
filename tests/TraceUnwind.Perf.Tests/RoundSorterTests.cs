using System.Buffers.Binary;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// perf's FINISHED_ROUND rule (ordered-events.c) on a hand-made timeline: at round N's marker,
/// deliver what is at most the largest time queued by the end of round N-1.
/// </summary>
public sealed class RoundSorterTests
{
    private static byte[] R(ulong time, int tag)
    {
        var b = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(b, time);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(8), tag);
        return b;
    }

    [Fact]
    public void TwoRoundWindow()
    {
        var got = new List<(ulong Time, int Tag)>();
        RoundSorter.Deliver d = (rec, _) => got.Add((BinaryPrimitives.ReadUInt64LittleEndian(rec), BinaryPrimitives.ReadInt32LittleEndian(rec[8..])));
        using var s = new RoundSorter(1 << 20);
        // Round 1: 10 30 20(a) 20(b)
        s.Queue(R(10, 1), 10, 0, d); s.Queue(R(30, 2), 30, 0, d); s.Queue(R(20, 3), 20, 0, d); s.Queue(R(20, 4), 20, 0, d);
        s.FlushRound(d);
        Assert.Empty(got); // the first round's limit is 0: nothing is due
        // Round 2: 25 40 15 (late, from another CPU's buffer)
        s.Queue(R(25, 5), 25, 0, d); s.Queue(R(40, 6), 40, 0, d); s.Queue(R(15, 7), 15, 0, d);
        s.FlushRound(d);
        Assert.Equal([(10UL, 1), (15, 7), (20, 3), (20, 4), (25, 5), (30, 2)], got); // up to round 1's max (30); equal times keep arrival order
        got.Clear();
        // Round 3: 35 50
        s.Queue(R(35, 8), 35, 0, d); s.Queue(R(50, 9), 50, 0, d);
        s.FlushRound(d);
        Assert.Equal([(35UL, 8), (40, 6)], got); // up to round 2's max (40)
        got.Clear();
        s.FlushAll(d);
        Assert.Equal([(50UL, 9)], got);
        Assert.Equal(0, s.Count);
    }

    [Fact]
    public void ByteCapForcesHalfFlushesAndKeepsOrder()
    {
        var got = new List<ulong>();
        RoundSorter.Deliver d = (rec, _) => got.Add(BinaryPrimitives.ReadUInt64LittleEndian(rec));
        using var s = new RoundSorter(1 << 20);
        var rec = new byte[1024];
        for (ulong t = 1; t <= 5000; t++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(rec, t);
            s.Queue(rec, t, 0, d); // 5 MB queued without a single round marker
        }
        Assert.True(s.ForcedFlushes > 0);
        s.FlushAll(d);
        Assert.Equal(Enumerable.Range(1, 5000).Select(i => (ulong)i), got);
    }

    /// <summary>
    /// The merge sort against a reference: per-CPU-like ascending runs interleaved, equal times across
    /// runs, rounds flushed and a final flush: the delivery order is the stable order by time within
    /// what each flush releases, exactly as a (time, arrival) sort gives.
    /// </summary>
    [Fact]
    public void MergeSortKeepsArrivalOrderForEqualTimes()
    {
        var rng = new Random(5);
        var got = new List<(ulong Time, int Tag)>();
        RoundSorter.Deliver d = (rec, _) => got.Add((BinaryPrimitives.ReadUInt64LittleEndian(rec), BinaryPrimitives.ReadInt32LittleEndian(rec[8..])));
        using var s = new RoundSorter(1 << 24);
        var queued = new List<(ulong Time, int Tag)>();
        var expected = new List<(ulong Time, int Tag)>();
        int tag = 0;
        ulong previousMax = 0, max = 0, clock = 1000;
        for (int round = 0; round < 60; round++)
        {
            // A round: a few "CPUs", each an ascending run starting a little in the past; coarse times make ties.
            int cpus = rng.Next(1, 5);
            for (int c = 0; c < cpus; c++)
            {
                ulong t = clock - (ulong)rng.Next(0, 40);
                int len = rng.Next(0, 30);
                for (int k = 0; k < len; k++)
                {
                    t += (ulong)rng.Next(0, 3);
                    s.Queue(R(t, tag), t, 0, d);
                    queued.Add((t, tag++));
                    max = Math.Max(max, t);
                }
            }
            clock += 30;
            s.FlushRound(d);
            // perf's rule on the reference: release up to the previous round's max, stable by time.
            if (queued.Count > 0)
            {
                if (previousMax != 0)
                {
                    var due = queued.Where(q => q.Time <= previousMax).OrderBy(q => q.Time).ThenBy(q => q.Tag).ToList();
                    expected.AddRange(due);
                    queued.RemoveAll(q => q.Time <= previousMax);
                }
                previousMax = max;
            }
            if (queued.Count == 0) max = 0;
            Assert.Equal(expected, got);
        }
        s.FlushAll(d);
        expected.AddRange(queued.OrderBy(q => q.Time).ThenBy(q => q.Tag));
        Assert.Equal(expected, got);
    }
}
