using System.Globalization;
using System.Text.Json;
using TraceUnwind.Model;
using TraceUnwind.Processes;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.Modules;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// fixtures/sframe/x86_64/stackcap-*.json: registers and 1-4 KiB of stack captured inside a
/// running <c>stackcap</c> (x86-64, SFrame V3, no frame pointers), with the load bias of every
/// module and <c>expected_sframe_chain</c> from the reference SFrame unwinder (which agreed with
/// libgcc's .eh_frame unwinder up to the first libc frame). libc is not in the fixtures, so the
/// walk must stop there: "no .sframe for ip".
/// </summary>
public class StackcapTests
{
    internal sealed record Snapshot(UnwindRegisters Regs, byte[] Stack, AddressSpace Maps, string[] Expected, JsonElement Root);

    internal static ulong Hex(JsonElement e) => ulong.Parse(e.GetString()!.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>Mappings the dynamic loader makes for <paramref name="elf"/> at load bias <paramref name="bias"/> (one per PT_LOAD, page-rounded).</summary>
    internal static IEnumerable<Mapping> LoadMappings(ElfFile elf, string path, ulong bias)
    {
        foreach (var p in elf.ProgramHeaders)
        {
            if (!p.IsLoad) continue;
            ulong start = bias + (p.VirtualAddress & ~0xfffUL);
            ulong end = bias + ((p.VirtualAddress + p.MemorySize + 0xfff) & ~0xfffUL);
            uint prot = ((p.Flags & 4) != 0 ? Mapping.ProtRead : 0) | ((p.Flags & 2) != 0 ? Mapping.ProtWrite : 0) | ((p.Flags & 1) != 0 ? Mapping.ProtExec : 0);
            yield return new Mapping(start, end, p.Offset & ~0xfffUL, path, prot);
        }
    }

    internal static Snapshot Load(string name)
    {
        var root = JsonDocument.Parse(Fixtures.ReadText("sframe", "x86_64", name)).RootElement;
        var regs = root.GetProperty("regs");
        var r = new UnwindRegisters(Hex(regs.GetProperty("ip")), Hex(regs.GetProperty("sp")), Hex(regs.GetProperty("fp")));
        var stack = root.GetProperty("stack");
        Assert.Equal(r.Sp, Hex(stack.GetProperty("addr")));
        byte[] bytes = Convert.FromHexString(stack.GetProperty("hex").GetString()!);
        Assert.Equal(stack.GetProperty("size").GetInt32(), bytes.Length);

        var maps = new AddressSpace();
        foreach (var m in root.GetProperty("modules").EnumerateArray())
        {
            string file = m.GetProperty("name").GetString() switch
            {
                "<main>" => root.GetProperty("binary").GetString()!,
                var other => other!,
            };
            string path = Fixtures.Path("sframe", "x86_64", file);
            if (!File.Exists(path)) continue; // libc, ld.so, vdso, libgcc_s: not in the fixtures
            foreach (var map in LoadMappings(ElfFile.Load(path), path, Hex(m.GetProperty("load_bias"))))
                maps.Insert(map);
        }
        string[] expected = root.GetProperty("expected_sframe_chain").EnumerateArray().Select(e => e.GetString()!).ToArray();
        return new Snapshot(r, bytes, maps, expected, root);
    }

    [Theory]
    [InlineData("stackcap-fib.json")]
    [InlineData("stackcap-alloca.json")]
    public void SFrameChainEqualsExpected(string name)
    {
        var s = Load(name);
        var unwinder = new UserStackUnwinder(UnwindMode.SFrame);
        var frames = new Frame[64];
        int n = unwinder.Unwind(UnwindArch.X86_64, s.Regs, s.Stack, s.Maps, frames, out var stop);
        Assert.Equal(s.Expected, frames[..n].Select(f => "0x" + f.Address.ToString("x", CultureInfo.InvariantCulture)));
        // The last expected frame is in libc, whose file is not here: no rule.
        Assert.Equal(UnwindStop.NoRule, stop);
        Assert.Equal(FrameFlags.None, frames[0].Flags);
        Assert.All(frames[1..n], f => Assert.Equal(FrameFlags.ReturnAddress, f.Flags));
        Assert.All(frames[..(n - 1)], f => Assert.EndsWith("stackcap", f.Mapping!.Path, StringComparison.Ordinal));
    }

    /// <summary>The same walk through the perf front end's contract: REGS_USER in x86-64 perf layout (BP 6, SP 7, IP 8).</summary>
    [Theory]
    [InlineData("stackcap-fib.json")]
    [InlineData("stackcap-alloca.json")]
    public void SameChainThroughCapturedUserStack(string name)
    {
        var s = Load(name);
        ulong mask = (1UL << 6) | (1UL << 7) | (1UL << 8);
        ulong[] regs = [s.Regs.Fp, s.Regs.Sp, s.Regs.Ip];
        var captured = new CapturedUserStack(UnwindArch.X86_64, 2, mask, regs, s.Stack);
        var frames = new Frame[64];
        int n = new UserStackUnwinder(UnwindMode.SFrame).Unwind(captured, s.Maps, frames, out var stop);
        Assert.Equal(s.Expected, frames[..n].Select(f => "0x" + f.Address.ToString("x", CultureInfo.InvariantCulture)));
        Assert.Equal(UnwindStop.NoRule, stop);

        // abi 0 (no user registers) and a 32-bit task: nothing to unwind.
        Assert.Equal(0, new UserStackUnwinder().Unwind(new CapturedUserStack(UnwindArch.X86_64, 0, 0, default, default), s.Maps, frames, out stop));
        Assert.Equal(UnwindStop.NoRegisters, stop);
        Assert.Equal(0, new UserStackUnwinder().Unwind(new CapturedUserStack(UnwindArch.X86_64, 1, mask, regs, s.Stack), s.Maps, frames, out stop));
        Assert.Equal(UnwindStop.NoRegisters, stop);
    }

    /// <summary>Frame names from .symtab equal the capture's own backtrace (dladdr) for the stackcap frames.</summary>
    [Theory]
    [InlineData("stackcap-fib.json")]
    [InlineData("stackcap-alloca.json")]
    public void SymbolsMatchBacktrace(string name)
    {
        var s = Load(name);
        var frames = new Frame[64];
        int n = new UserStackUnwinder(UnwindMode.SFrame).Unwind(UnwindArch.X86_64, s.Regs, s.Stack, s.Maps, frames, out _);
        var symbolizer = new ElfSymbolizer();
        var backtrace = s.Root.GetProperty("backtrace").EnumerateArray().ToArray();
        int checkedFrames = 0;
        for (int i = 0; i < n; i++)
        {
            var bt = backtrace[i];
            Assert.Equal(Hex(bt.GetProperty("ip")), frames[i].Address);
            if (bt.GetProperty("object").GetString() != "stackcap") continue;
            Assert.True(symbolizer.TryResolve(frames[i], out var hit));
            Assert.Equal(bt.GetProperty("symbol").GetString(), hit.Name);
            Assert.Equal(Hex(bt.GetProperty("symbol_offset")), hit.Offset);
            checkedFrames++;
        }
        Assert.Equal(n - 1, checkedFrames);
    }

    /// <summary>Auto mode: SFrame for stackcap, then frame pointers for libc, whose rbp (0x1 / 0x2 here) is garbage: the walk stops there, it does not invent frames.</summary>
    [Theory]
    [InlineData("stackcap-fib.json")]
    [InlineData("stackcap-alloca.json")]
    public void AutoModeFallsBackToFramePointersAndStopsOnGarbage(string name)
    {
        var s = Load(name);
        var frames = new Frame[64];
        int n = new UserStackUnwinder(UnwindMode.Auto).Unwind(UnwindArch.X86_64, s.Regs, s.Stack, s.Maps, frames, out var stop);
        Assert.Equal(s.Expected, frames[..n].Select(f => "0x" + f.Address.ToString("x", CultureInfo.InvariantCulture)));
        Assert.Equal(UnwindStop.WouldGoBackwards, stop);
    }

    /// <summary>Frame pointers only: these binaries have none (rbp is a data register), so the walk stops at once.</summary>
    [Fact]
    public void FramePointerModeOnFramePointerlessCode()
    {
        var s = Load("stackcap-fib.json");
        var frames = new Frame[64];
        int n = new UserStackUnwinder(UnwindMode.FramePointer).Unwind(UnwindArch.X86_64, s.Regs, s.Stack, s.Maps, frames, out var stop);
        Assert.Equal(1, n);
        Assert.Equal(UnwindStop.WouldGoBackwards, stop); // rbp = 0x1 is below rsp
        n = new UserStackUnwinder(UnwindMode.None).Unwind(UnwindArch.X86_64, s.Regs, s.Stack, s.Maps, frames, out stop);
        Assert.Equal(1, n);
        Assert.Equal(UnwindStop.Disabled, stop);
    }

    /// <summary>A module whose .sframe fails validation is dropped (as the kernel drops it), counted once, and named in the stop reason.</summary>
    [Fact]
    public void RefusedSFrameSectionIsDroppedAndCounted()
    {
        var s = Load("stackcap-fib.json");
        string path = Fixtures.Path("sframe", "x86_64", "stackcap");
        var bytes = File.ReadAllBytes(path);
        Assert.True(ElfFile.Parse(bytes).TryFindSFrame(out var loc));
        bytes[loc.FileOffset + 3] &= 0xfe; // SFRAME_F_FDE_SORTED cleared
        var tally = new TraceUnwind.Diagnostics.ErrorTally();
        var files = new ElfFileCache(tally: tally);
        files.Add(path, ElfFile.Parse(bytes, path));
        var frames = new Frame[64];
        int n = new UserStackUnwinder(UnwindMode.SFrame, files, tally).Unwind(UnwindArch.X86_64, s.Regs, s.Stack, s.Maps, frames, out var stop);
        Assert.Equal(1, n);
        Assert.Equal(UnwindStop.BadUnwindInfo, stop);
        n = new UserStackUnwinder(UnwindMode.Auto, files, tally).Unwind(UnwindArch.X86_64, s.Regs, s.Stack, s.Maps, frames, out stop);
        Assert.Equal(1, n);
        Assert.Equal(UnwindStop.WouldGoBackwards, stop); // frame pointers instead: rbp = 0x1
        Assert.Equal(1, tally.CountOf("unwind.sframe-invalid"));
        Assert.Contains("SFRAME_F_FDE_SORTED", tally.ExamplesOf("unwind.sframe-invalid")[0], StringComparison.Ordinal);
    }
}
