using System.Text;
using TraceUnwind.Model;
using TraceUnwind.Output.Tests.Support;
using TraceUnwind.Symbols;

namespace TraceUnwind.Output.Tests;

/// <summary>
/// fold sorts its lines without rendering them first (by name ranks, see FoldedWriter.Complete):
/// the order must be exactly the bytewise order of the rendered lines, also where one name is a
/// prefix of another and the next byte sorts before or after the ';' that joins frames
/// (<c>bash</c> / <c>bash-1</c> / <c>bash:2</c> / <c>bash;</c>...), for empty names, and for stacks that
/// are prefixes of others.
/// </summary>
public class FoldedWriterOrderTests
{
    private static readonly string[] Names =
        ["f", "f-x", "f.b", "f0", "fz", "f:g", "", "f ", "ff", "g", "f-", "e", "f~", "F", "f\u00e9", "ab", "a", "f;h"];
    private static readonly string[] Comms = ["bash", "bash-1", "bash:2", "ba", "bash2", "b", "bash 3", "x"];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void LinesAreInBytewiseOrder(int seed)
    {
        var rng = new Random(seed);
        var sym = new DictionarySymbolizer();
        var frames = new Frame[Names.Length];
        for (int i = 0; i < Names.Length; i++)
        {
            frames[i] = new Frame(0xffffffff81000000UL + (ulong)i * 16, FrameKind.Kernel);
            sym.Add(frames[i], new SymbolHit(Names[i], 0));
        }
        var samples = new List<OwnedSample>();
        var expected = new Dictionary<string, long>(StringComparer.Ordinal);
        for (int s = 0; s < 3000; s++)
        {
            string comm = Comms[rng.Next(Comms.Length)];
            int depth = rng.Next(0, 5);
            var stack = new Frame[depth];
            var text = new StringBuilder(comm.Replace(' ', '_'));
            // Frames are innermost first; the line is outermost first.
            for (int d = 0; d < depth; d++) stack[d] = frames[rng.Next(frames.Length)];
            for (int d = depth - 1; d >= 0; d--) text.Append(';').Append(Names[(int)((stack[d].Address - 0xffffffff81000000UL) / 16)].Replace(';', ':'));
            samples.Add(new OwnedSample { Pid = 1, Tid = 1, Comm = comm, Event = "cpu-clock", Period = 1, Frames = stack });
            string line = text.ToString();
            expected[line] = expected.GetValueOrDefault(line) + 1;
        }
        var ms = new MemoryStream();
        var w = new FoldedWriter(ms, sym, new FoldedOptions { TidyNames = false });
        OwnedSample.SendAll(samples, w);
        var want = expected.Keys.Select(k => Encoding.UTF8.GetBytes(k)).ToList();
        want.Sort((a, b) => a.AsSpan().SequenceCompareTo(b));
        var sb = new StringBuilder();
        foreach (var k in want) sb.Append(Encoding.UTF8.GetString(k)).Append(' ').Append(expected[Encoding.UTF8.GetString(k)]).Append('\n');
        Assert.Equal(sb.ToString(), Encoding.UTF8.GetString(ms.ToArray()));
    }
}
