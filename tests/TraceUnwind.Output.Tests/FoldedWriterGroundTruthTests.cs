using System.Text;
using TraceUnwind.Output.Tests.Support;
using TraceUnwind.Testing;

namespace TraceUnwind.Output.Tests;

/// <summary>
/// FoldedWriter against Brendan Gregg's stackcollapse-perf.pl run over perf's own <c>perf script</c>
/// text of the same captures (fixtures/output/*.folded, made by fixtures/output/make-folded.sh):
/// fed the same samples and perf's names, with stackcollapse's names for unsymbolized frames
/// (<see cref="FrameNameStyle.ModuleName"/>), the output must be byte-identical.
/// </summary>
public class FoldedWriterGroundTruthTests
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var name in FixtureSamples.AllNames())
            foreach (var variant in new[] { "default", "pid", "tid", "kernel" })
                data.Add(name, variant);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesStackcollapsePerf(string capture, string variant)
    {
        var c = FixtureSamples.Load(capture);
        var options = new FoldedOptions
        {
            NameStyle = FrameNameStyle.ModuleName,
            IncludePid = variant == "pid",
            IncludeTid = variant == "tid",
            AnnotateKernel = variant == "kernel",
        };
        string ours = Fold(c, options);
        string expected = Fixtures.ReadText("output", $"{capture}.{variant}.folded");
        AssertSameLines(expected, ours);
    }

    internal static string Fold(FixtureCapture c, FoldedOptions options)
    {
        var ms = new MemoryStream();
        var w = new FoldedWriter(ms, c.Symbolizer, options);
        OwnedSample.SendAll(c.Samples, w);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    internal static void AssertSameLines(string expected, string actual)
    {
        var e = expected.Split('\n');
        var a = actual.Split('\n');
        for (int i = 0; i < Math.Min(e.Length, a.Length); i++)
            if (e[i] != a[i])
                Assert.Fail($"line {i + 1} differs:\n expected: {Cut(e[i])}\n actual:   {Cut(a[i])}");
        Assert.Equal(e.Length, a.Length);
    }

    private static string Cut(string s) => s.Length > 400 ? s[..200] + " ... " + s[^200..] : s;
}
