using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Ftrace.Parsing;
using TraceUnwind.Testing;

namespace TraceUnwind.Ftrace.Tests;

/// <summary>Frame lines of every real rendering against the capture tool's own regexes (verify_pairs.py FRAME_SYM / FRAME_RAW).</summary>
public partial class FrameLineParserTests
{
    [GeneratedRegex(@"^ => (?<path>.*)\[\+0x(?<off>[0-9a-f]+)\](?: <(?<addr>[0-9a-f]+)>)?$")]
    private static partial Regex FrameSym();

    [GeneratedRegex(@"^ =>  <(?<addr>[0-9a-f]{16})>$")]
    private static partial Regex FrameRaw();

    public static TheoryData<string> FilesWithFrames()
    {
        var d = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Fixtures.Path("ftrace", "formats"), "*.txt").Order(StringComparer.Ordinal))
            if (File.ReadAllText(f).Contains("<user stack trace>\n => ", StringComparison.Ordinal)) d.Add("ftrace/formats/" + Path.GetFileName(f));
        foreach (var c in FtraceTestData.Captures)
            foreach (var v in new[] { "raw", "sym", "symaddr" }) d.Add($"ftrace/{c}/{v}.txt");
        d.Add("trace-cmd/kernel_trace_nosym.txt");
        d.Add("trace-cmd/kernel_trace_sym-userobj.txt");
        return d;
    }

    [Theory]
    [MemberData(nameof(FilesWithFrames))]
    public void UserFramesMatchTheIndependentParse(string file)
    {
        bool inUser = false;
        int frames = 0;
        foreach (var line in FtraceTestData.Lines(Fixtures.ReadText(file.Split('/'))))
        {
            if (!line.StartsWith(" =>", StringComparison.Ordinal))
            {
                inUser = line.EndsWith("<user stack trace>", StringComparison.Ordinal);
                continue;
            }
            Assert.True(FrameLineParser.TryParse(Encoding.UTF8.GetBytes(line), out var f), line);
            if (!inUser)
            {
                Assert.Equal(FrameForm.Symbol, f.Form);
                continue;
            }
            frames++;
            if (line == " => [LINE TOO BIG]") { Assert.Equal(FrameForm.LineTooBig, f.Form); continue; }
            var raw = FrameRaw().Match(line);
            if (raw.Success)
            {
                Assert.Equal(FrameForm.Raw, f.Form);
                Assert.Equal(ulong.Parse(raw.Groups["addr"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), f.Address);
                continue;
            }
            var sym = FrameSym().Match(line);
            Assert.True(sym.Success, line);
            Assert.Equal(sym.Groups["addr"].Success ? FrameForm.UserObjAddress : FrameForm.UserObj, f.Form);
            Assert.Equal(sym.Groups["path"].Value, Encoding.UTF8.GetString(f.Path));
            Assert.Equal(ulong.Parse(sym.Groups["off"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), f.Offset);
            if (sym.Groups["addr"].Success)
                Assert.Equal(ulong.Parse(sym.Groups["addr"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), f.Address);
            Assert.Equal(0, f.Symbol.Length);
        }
        Assert.True(frames >= 10, $"{file}: {frames} user frames");
    }

    [Theory]
    [InlineData(" =>  <00007f1d159eeb1d>", FrameForm.Raw, "", 0UL, 0x7f1d159eeb1dUL, "")]
    [InlineData(" => /tmp/tu/odd dir/helper with space[+0x202]", FrameForm.UserObj, "/tmp/tu/odd dir/helper with space", 0x202UL, 0UL, "")]
    [InlineData(@" => /tmp/tu/nl\012dir/helper[+0x49c]", FrameForm.UserObj, @"/tmp/tu/nl\012dir/helper", 0x49cUL, 0UL, "")]
    [InlineData(" => /tmp/tu/helper_deleted (deleted)[+0x231]", FrameForm.UserObj, "/tmp/tu/helper_deleted (deleted)", 0x231UL, 0UL, "")]
    [InlineData(" => /etc/hostname[+0xfffffffffffff800] <00007fa771384800>", FrameForm.UserObjAddress, "/etc/hostname", 0xfffffffffffff800UL, 0x7fa771384800UL, "")]
    [InlineData(" => /a[+0x1]b/c[+0x10]", FrameForm.UserObj, "/a[+0x1]b/c", 0x10UL, 0UL, "")]
    [InlineData(" => /usr/lib/libc.so.6[+0x124a] <00007fa7711be24a> __libc_start_call_main+0x7a", FrameForm.UserObjAddress, "/usr/lib/libc.so.6", 0x124aUL, 0x7fa7711be24aUL, "__libc_start_call_main+0x7a")]
    [InlineData(" => /usr/lib/libc.so.6[+0x124a] main+0x1", FrameForm.UserObj, "/usr/lib/libc.so.6", 0x124aUL, 0UL, "main+0x1")]
    [InlineData(" => [LINE TOO BIG]", FrameForm.LineTooBig, "", 0UL, 0UL, "")]
    [InlineData(" => ftrace_syscall_enter+0x145/0x200", FrameForm.Symbol, "", 0UL, 0UL, "ftrace_syscall_enter+0x145/0x200")]
    [InlineData(" => do_syscall_64+0x1fa/0x280 <ffffffff821ed69a>", FrameForm.Symbol, "", 0UL, 0xffffffff821ed69aUL, "do_syscall_64+0x1fa/0x280")]
    [InlineData(" => entry_SYSCALL_64_after_hwframe", FrameForm.Symbol, "", 0UL, 0UL, "entry_SYSCALL_64_after_hwframe")]
    [InlineData(" => ??", FrameForm.Symbol, "", 0UL, 0UL, "??")]
    public void Forms(string line, FrameForm form, string path, ulong offset, ulong address, string symbol)
    {
        Assert.True(FrameLineParser.TryParse(Encoding.UTF8.GetBytes(line), out var f));
        Assert.Equal(form, f.Form);
        Assert.Equal(path, Encoding.UTF8.GetString(f.Path));
        Assert.Equal(offset, f.Offset);
        Assert.Equal(address, f.Address);
        Assert.Equal(address != 0, f.HasAddress);
        Assert.Equal(symbol, Encoding.UTF8.GetString(f.Symbol));
        Assert.Equal(4, f.ContentStart);
    }

    [Fact]
    public void KernelStackNamesOfTheStacktraceOption()
    {
        // formats/41 (sym-offset) and 42 (sym-offset + sym-addr) render the same kernel stacks.
        var names41 = KernelFrames("41_stacktrace_option_sym-offset.txt");
        var names42 = KernelFrames("42_stacktrace_option_sym-offset_sym-addr.txt");
        var names43 = KernelFrames("43_stacktrace_trigger.txt");
        Assert.Equal(["ftrace_syscall_enter", "syscall_trace_enter", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"], names41.Take(4).Select(x => x.Name));
        Assert.Equal(names41.Select(x => x.Name), names42.Select(x => x.Name));
        Assert.All(names41, x => Assert.Equal(0UL, x.Address));
        Assert.Equal(0xffffffff814b0eb5UL, names42[0].Address);
        Assert.All(names42, x => Assert.StartsWith("ffffffff", x.Address.ToString("x", CultureInfo.InvariantCulture)));
        Assert.Equal(["ftrace_syscall_enter", "syscall_trace_enter", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"], names43.Take(4).Select(x => x.Name));
    }

    private static List<(string Name, ulong Address)> KernelFrames(string file)
    {
        var list = new List<(string, ulong)>();
        bool inKernel = false;
        foreach (var line in FtraceTestData.Lines(Fixtures.ReadText("ftrace", "formats", file)))
        {
            if (!line.StartsWith(" =>", StringComparison.Ordinal)) { inKernel = line.EndsWith("<stack trace>", StringComparison.Ordinal); continue; }
            if (!inKernel) continue;
            Assert.True(FrameLineParser.TryParse(Encoding.UTF8.GetBytes(line), out var f));
            Assert.Equal(FrameForm.Symbol, f.Form);
            list.Add((Encoding.UTF8.GetString(f.SymbolName), f.Address));
        }
        return list;
    }

    [Theory]
    [InlineData("\t=> 0x562727bb31b2", 0, FrameForm.TraceCmdAddress, 0x562727bb31b2UL)]
    [InlineData("\t=> 0x0", 0, FrameForm.TraceCmdAddress, 0UL)]
    [InlineData("tu_tc:               sh-13700 [001]  3170.087850: user_stack:           \t=> 0x7f224749f353", 72, FrameForm.TraceCmdAddress, 0x7f224749f353UL)]
    [InlineData("\t=> /usr/lib/libc.so.6[+0xadbd3]", 0, FrameForm.UserObj, 0UL)]
    public void TraceCmdFrames(string line, int tab, FrameForm form, ulong address)
    {
        Assert.Equal(tab, line.IndexOf("\t=> ", StringComparison.Ordinal));
        Assert.True(FrameLineParser.TryParseTraceCmd(Encoding.UTF8.GetBytes(line), tab, out var f));
        Assert.Equal(form, f.Form);
        Assert.Equal(address, f.Address);
        Assert.Equal(tab + 4, f.ContentStart);
    }
}
