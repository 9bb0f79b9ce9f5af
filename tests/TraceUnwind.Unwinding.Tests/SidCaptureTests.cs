using System.Globalization;
using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.Modules;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// fixtures/unwind-sid/: <c>recur</c> built in a Debian sid chroot (gcc 16, binutils 2.47,
/// <c>-O2 -fomit-frame-pointer -Wa,--gsframe-3</c>), run inside the chroot under the host's
/// perf 6.1 with <c>--call-graph dwarf,4096</c>; ground truth is that perf's <c>perf script</c>
/// (it unwinds the same samples with .eh_frame through libdw). Our SFrame unwinding of every
/// sample must give perf's user frames, address for address, up to and including the first
/// frame in a module without .sframe (sid's libc.so.6 has none; it is not in the fixtures).
/// </summary>
public class SidCaptureTests
{
    private static readonly Lazy<List<PerfDataMini.Sample>> Samples = new(() =>
        PerfDataMini.Read(Fixtures.ReadBytes("unwind-sid", "perf.data")));

    private static string SymFs => Fixtures.Path("unwind-sid", "symfs");

    /// <summary>One perf script sample: its time and its user frames (address as printed, dso); inlined pseudo-frames dropped.</summary>
    internal sealed record PerfSample(string Time, List<(ulong Address, string Symbol, string Dso)> UserFrames);

    private static List<PerfSample> PerfScript() => PerfScript("unwind-sid");

    internal static List<PerfSample> PerfScript(string folder)
    {
        var list = new List<PerfSample>();
        PerfSample? cur = null;
        foreach (var raw in Fixtures.ReadText(folder, "perf-script.txt.gz").Split('\n'))
        {
            if (raw.Length == 0) { cur = null; continue; }
            if (raw[0] != '\t')
            {
                // "recur 26043  1557.470588:    8333333 cpu-clock:ppp: "
                var parts = raw.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                cur = new PerfSample(parts[2].TrimEnd(':'), new());
                list.Add(cur);
                continue;
            }
            // "\t            1254 leaf+0x24 (/tu/recur)"
            var line = raw.Trim();
            int sp = line.IndexOf(' ');
            int open = line.LastIndexOf(" (", StringComparison.Ordinal);
            string dso = line[(open + 2)..^1];
            if (dso is "inlined" or "[kernel.kallsyms]") continue;
            ulong addr = ulong.Parse(line[..sp], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            cur!.UserFrames.Add((addr, line[(sp + 1)..open], dso));
        }
        return list;
    }

    internal static string TimeOf(ulong ns) =>
        (ns / 1_000_000_000).ToString(CultureInfo.InvariantCulture) + "." + (ns / 1000 % 1_000_000).ToString("D6", CultureInfo.InvariantCulture);

    [Fact]
    public void BinaryIsSFrameV3WithoutFramePointers()
    {
        var elf = ElfFile.Load(Path.Combine(SymFs, "tu", "recur"));
        var s = SFrameSection.FromElf(elf)!;
        Assert.Equal(3, s.Version);
        Assert.Equal("48a35ffb03a4f2bc817b9eb16c0df6038e372306", Convert.ToHexStringLower(elf.BuildId!));
        // objdump --sframe of binutils 2.47 (from the chroot) agrees with our dump too.
        Assert.Equal(Fixtures.ReadText("unwind-sid", "recur.objdump-sframe.txt"), SFrameDumper.DumpFile(elf, "recur"));
    }

    [Fact]
    public void SFrameUnwindingMatchesPerfScript()
    {
        var perf = PerfScript();
        var samples = Samples.Value;
        Assert.Equal(perf.Count, samples.Count);
        var unwinder = new UserStackUnwinder(UnwindMode.SFrame, SymFs);
        var frames = new Frame[256];
        int compared = 0, deepest = 0;
        for (int i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            var p = perf[i];
            Assert.Equal(p.Time, TimeOf(s.Time));
            int n = unwinder.Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), s.Maps, frames, out var stop);

            // Up to and including the first frame outside /tu/recur (libc, no .sframe).
            int k = p.UserFrames.FindIndex(f => f.Dso != "/tu/recur");
            Assert.True(k > 0, $"sample {p.Time}: perf's chain never leaves /tu/recur");
            Assert.True(n == k + 1, $"sample {p.Time}: {n} frames, perf has {k + 1} up to libc; stop {stop}");
            for (int j = 0; j <= k; j++)
            {
                var f = frames[j];
                Assert.NotNull(f.Mapping);
                // perf prints file-relative addresses, callers one byte back (libdw's pc - 1).
                ulong ours = f.Mapping!.FileOffset(f.LookupAddress);
                Assert.True(ours == p.UserFrames[j].Address && f.Mapping.Path == p.UserFrames[j].Dso,
                    $"sample {p.Time} frame {j}: ours {ours:x} {f.Mapping.Path}, perf {p.UserFrames[j].Address:x} {p.UserFrames[j].Symbol} ({p.UserFrames[j].Dso})");
                Assert.Equal(j == 0 ? FrameFlags.None : FrameFlags.ReturnAddress, f.Flags);
            }
            // libc.so.6 is not in the fixtures: no rule there.
            Assert.Equal(UnwindStop.NoRule, stop);
            compared++;
            deepest = Math.Max(deepest, n);
        }
        Assert.Equal(69, compared);
        Assert.True(deepest >= 40, $"deepest chain {deepest}");
    }

    [Fact]
    public void SymbolsMatchPerfScript()
    {
        var perf = PerfScript();
        var samples = Samples.Value;
        var unwinder = new UserStackUnwinder(UnwindMode.SFrame, SymFs);
        var symbolizer = new ElfSymbolizer(SymFs);
        var frames = new Frame[256];
        for (int i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            int n = unwinder.Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), s.Maps, frames, out _);
            for (int j = 0; j < n - 1; j++)
            {
                Assert.True(symbolizer.TryResolve(frames[j], out var hit));
                // perf names the looked-up address (pc - 1 for callers): symbol+offset of that.
                ulong delta = frames[j].Address - frames[j].LookupAddress;
                Assert.Equal(perf[i].UserFrames[j].Symbol, $"{hit.Name}+0x{hit.Offset - delta:x}");
            }
        }
    }

    /// <summary>Auto mode agrees up to libc too (it then tries frame pointers there, and stops on sid libc's rbp).</summary>
    [Fact]
    public void AutoModeAgreesUpToLibc()
    {
        var perf = PerfScript();
        var samples = Samples.Value;
        var unwinder = new UserStackUnwinder(UnwindMode.Auto, SymFs);
        var frames = new Frame[256];
        for (int i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            int n = unwinder.Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), s.Maps, frames, out var stop);
            int k = perf[i].UserFrames.FindIndex(f => f.Dso != "/tu/recur");
            Assert.True(n >= k + 1);
            for (int j = 0; j <= k; j++)
                Assert.Equal(perf[i].UserFrames[j].Address, frames[j].Mapping!.FileOffset(frames[j].LookupAddress));
            Assert.NotEqual(UnwindStop.NoRule, stop);
        }
    }

    /// <summary>A capture that names another build of /tu/recur: the file is refused, nothing is unwound with wrong rules.</summary>
    [Fact]
    public void BuildIdMismatchRefusesTheFile()
    {
        var s = Samples.Value[0];
        var maps = new AddressSpace();
        byte[] wrong = Convert.FromHexString("00112233445566778899aabbccddeeff00112233");
        foreach (var m in s.Maps.Mappings)
            maps.Insert(m.Path == "/tu/recur" ? new Mapping(m.Start, m.End, m.PgOff, m.Path, m.Prot, buildId: wrong) : m);
        var tally = new ErrorTally();
        var unwinder = new UserStackUnwinder(UnwindMode.SFrame, SymFs, tally);
        var frames = new Frame[256];
        int n = unwinder.Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), maps, frames, out var stop);
        Assert.Equal(1, n);
        Assert.Equal(UnwindStop.NoRule, stop);
        Assert.Equal(1, tally.CountOf("unwind.build-id-mismatch"));

        // The right build id is accepted.
        byte[] right = Convert.FromHexString("48a35ffb03a4f2bc817b9eb16c0df6038e372306");
        maps = new AddressSpace();
        foreach (var m in s.Maps.Mappings)
            maps.Insert(m.Path == "/tu/recur" ? new Mapping(m.Start, m.End, m.PgOff, m.Path, m.Prot, buildId: right) : m);
        n = new UserStackUnwinder(UnwindMode.SFrame, SymFs).Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), maps, frames, out _);
        Assert.True(n > 10);
    }

    /// <summary>Unwinding a sample allocates nothing once the modules are loaded (GC.GetAllocatedBytesForCurrentThread over the whole capture).</summary>
    [Fact]
    public void UnwindingAllocatesNothing()
    {
        var samples = Samples.Value;
        var unwinder = new UserStackUnwinder(UnwindMode.Auto, SymFs);
        var frames = new Frame[256];
        long total = 0;
        foreach (var s in samples) // warm-up: opens files, builds bindings, JITs
            total += unwinder.Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), s.Maps, frames, out _);
        long again = 0;
        long allocated = Allocations.LeastOf(3, () =>
        {
            for (int rep = 0; rep < 20; rep++)
                foreach (var s in samples)
                    again += unwinder.Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), s.Maps, frames, out _);
        });
        Assert.Equal(total * 20 * 3, again);
        Assert.Equal(0, allocated);
    }

    /// <summary>
    /// debuglink/symfs: the same binary stripped (<c>objcopy --strip-all --add-gnu-debuglink=recur.debug</c>)
    /// with its debug file (<c>objcopy --only-keep-debug</c>) beside it: the stripped file still unwinds
    /// (.sframe is allocated, so strip keeps it) and frames are named from the debug file's .symtab.
    /// </summary>
    [Fact]
    public void StrippedBinaryIsNamedThroughItsDebugLink()
    {
        string symfs = Fixtures.Path("unwind-sid", "debuglink", "symfs");
        var stripped = ElfFile.Load(Path.Combine(symfs, "tu", "recur"));
        Assert.Null(stripped.Symbols); // .symtab gone; .dynsym holds no defined function
        Assert.True(stripped.TryGetDebugLink(out string link, out uint crc));
        Assert.Equal("recur.debug", link);
        // objcopy's CRC-32 of the debug file equals ours.
        Assert.Equal(crc, Crc32.Compute(File.ReadAllBytes(Path.Combine(symfs, "tu", "recur.debug"))));

        var perf = PerfScript();
        var samples = Samples.Value;
        var files = new ElfFileCache(symfs);
        var unwinder = new UserStackUnwinder(UnwindMode.SFrame, files);
        var symbolizer = new ElfSymbolizer(files);
        var frames = new Frame[256];
        for (int i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            int n = unwinder.Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), s.Maps, frames, out _);
            int k = perf[i].UserFrames.FindIndex(f => f.Dso != "/tu/recur");
            Assert.Equal(k + 1, n);
            for (int j = 0; j < k; j++)
            {
                Assert.True(symbolizer.TryResolve(frames[j], out var hit));
                ulong delta = frames[j].Address - frames[j].LookupAddress;
                Assert.Equal(perf[i].UserFrames[j].Symbol, $"{hit.Name}+0x{hit.Offset - delta:x}");
            }
        }
    }
}
