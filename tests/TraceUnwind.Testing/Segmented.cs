using System.Buffers;

namespace TraceUnwind.Testing;

/// <summary>
/// Builds multi-segment <see cref="ReadOnlySequence{T}"/>s from one buffer, split at chosen
/// indexes (System.Text.Json's JsonTestHelper.GetSequences): stream parsers must give the same
/// answer however the bytes arrive.
/// </summary>
public static class Segmented
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>A sequence of <paramref name="data"/> cut at each of <paramref name="splits"/> (ascending, inside the data).</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, params int[] splits)
    {
        int prev = 0;
        Segment? first = null, last = null;
        foreach (int cut in splits.Append(data.Length))
        {
            var mem = data.AsMemory(prev, cut - prev);
            if (first is null) first = last = new Segment(mem, 0);
            else last = last!.Append(mem);
            prev = cut;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    /// <summary>Every two-piece split of <paramref name="data"/>.</summary>
    public static IEnumerable<ReadOnlySequence<byte>> EverySplit(byte[] data)
    {
        for (int i = 0; i <= data.Length; i++) yield return Split(data, i);
    }

    /// <summary>The data in segments of <paramref name="size"/> bytes.</summary>
    public static ReadOnlySequence<byte> Chunks(byte[] data, int size)
    {
        var cuts = new List<int>();
        for (int i = size; i < data.Length; i += size) cuts.Add(i);
        return Split(data, cuts.ToArray());
    }
}
