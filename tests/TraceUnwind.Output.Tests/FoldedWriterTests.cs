using System.Text;
using TraceUnwind.Model;
using TraceUnwind.Output.Tests.Support;
using TraceUnwind.Processes;
using TraceUnwind.Symbols;

namespace TraceUnwind.Output.Tests;

/// <summary>The fold rules real captures here do not exercise (synthetic samples).</summary>
public class FoldedWriterTests
{
    private static readonly Mapping Libc = new(0x7f0000000000, 0x7f0000168000, 0x28000, "/usr/lib/x86_64-linux-gnu/libc.so.6");
    private static readonly Mapping Vdso = new(0x7ffd00000000, 0x7ffd00002000, 0, "[vdso]");

    private static string Fold(IEnumerable<OwnedSample> samples, ISymbolizer? sym, FoldedOptions? o = null)
    {
        var ms = new MemoryStream();
        var w = new FoldedWriter(ms, sym, o);
        OwnedSample.SendAll(samples, w);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    [Fact]
    public void NamesWeightsAndSkippedRecords()
    {
        var sym = new DictionarySymbolizer();
        var k = new Frame(0xffffffff81000010, FrameKind.Kernel);
        var cxx = new Frame(0x7f0000001000, FrameKind.User, Libc);
        var go = new Frame(0x7f0000002000, FrameKind.User, Libc);
        sym.Add(k, new SymbolHit("do_syscall_64", 0x10));
        sym.Add(cxx, new SymbolHit("ns::f(int, char const*) [clone .cold]", 4));
        sym.Add(go, new SymbolHit("net/http.(*Client).Do", 8));
        var anon = new Frame(0x7f0000003000, FrameKind.User, Libc); // unsymbolized, file-backed
        var samples = new[]
        {
            new OwnedSample { Pid = 10, Tid = 11, Comm = "my worker", Event = "cpu-clock", Period = 100,
                Frames = [k, new Frame(0xcf01, FrameKind.UserLost)] },
            new OwnedSample { Pid = 10, Tid = 11, Comm = "my worker", Event = "cpu-clock", Period = 200,
                Frames = [k, new Frame(0xcf02, FrameKind.DeferredCookie)] },
            new OwnedSample { Pid = 10, Tid = 11, Comm = "my worker", Kind = SampleKind.DeferredCallchain, Cookie = 0xcf02,
                Frames = [anon] },
            new OwnedSample { Pid = -1, Tid = 12, Comm = "x", Event = "cycles", Period = 7,
                Frames = [new Frame(0x7ffd00000010, FrameKind.User, Vdso), anon, go, cxx, new Frame(0x1234, FrameKind.User)] },
            new OwnedSample { Pid = -1, Tid = 12, Comm = "x", Event = "cycles", Period = 5 },
        };
        Assert.Equal(
            "my_worker;[deferred user stack lost];do_syscall_64 1\n" +
            "my_worker;do_syscall_64 1\n" +
            "x 1\n" +
            "x;0x0000000000001234;ns::f;net/http.(*Client).Do;/usr/lib/x86_64-linux-gnu/libc.so.6[+0x3000];[vdso][+0x10] 1\n",
            Fold(samples, sym));
        Assert.Equal(
            "my_worker-10/11;[deferred user stack lost];do_syscall_64_[k] 100\n" +
            "my_worker-10/11;do_syscall_64_[k] 200\n" +
            "x-?/12 5\n" +
            "x-?/12;[unknown];ns::f;net/http.(*Client).Do;[libc.so.6];[[vdso]] 7\n",
            Fold(samples, sym, new FoldedOptions { IncludeTid = true, AnnotateKernel = true, Weight = SampleWeight.Period, NameStyle = FrameNameStyle.ModuleName }));
        Assert.Equal(
            "x-? 1\n" +
            "x-?;0x0000000000001234;ns::f(int, char const*) [clone .cold];net/http.(*Client).Do;/usr/lib/x86_64-linux-gnu/libc.so.6[+0x3000];[vdso][+0x10] 1\n",
            Fold(samples, sym, new FoldedOptions { IncludePid = true, TidyNames = false, EventFilter = "cycles" }));
    }

    [Theory]
    [InlineData("a;b", "a:b")]
    [InlineData("foo(int)", "foo")]
    [InlineData("(anonymous namespace)::g(int)", "(anonymous namespace)::g")]
    [InlineData("main.(*T).Run", "main.(*T).Run")]
    [InlineData("RegExp:[&<>\"']", "RegExp:[&<>]")]
    public void TidyIsStackcollapses(string input, string expected)
    {
        var bytes = Encoding.UTF8.GetBytes(input);
        int n = FoldedWriter.Tidy(bytes, full: true);
        Assert.Equal(expected, Encoding.UTF8.GetString(bytes, 0, n));
    }
}
