using System.Numerics;
using System.Runtime.CompilerServices;
using TraceUnwind.Unwinding.Arch;

namespace TraceUnwind.Unwinding;

/// <summary>
/// The registers at the sampled instruction: ip, sp, fp and, for rules that name other registers
/// (the topmost frame only), DWARF registers 0-31 where known.
/// </summary>
public struct UnwindRegisters
{
    [InlineArray(32)]
    private struct File
    {
        private ulong _r0;
    }

    private File _file;
    private uint _known;

    public UnwindRegisters(ulong ip, ulong sp, ulong fp)
    {
        Ip = ip;
        Sp = sp;
        Fp = fp;
    }

    public ulong Ip { get; set; }
    public ulong Sp { get; set; }
    public ulong Fp { get; set; }

    /// <summary>Sets DWARF register <paramref name="dwarf"/> (0-31; others are ignored).</summary>
    public void Set(int dwarf, ulong value)
    {
        if ((uint)dwarf >= 32) return;
        _file[dwarf] = value;
        _known |= 1u << dwarf;
    }

    /// <summary>Reads DWARF register <paramref name="dwarf"/> if it was set.</summary>
    public readonly bool TryGet(int dwarf, out ulong value)
    {
        if ((uint)dwarf < 32 && (_known & (1u << dwarf)) != 0)
        {
            value = _file[dwarf];
            return true;
        }
        value = 0;
        return false;
    }

    /// <summary>
    /// Registers from perf's PERF_SAMPLE_REGS_USER: <paramref name="values"/> holds one value per set
    /// bit of <paramref name="mask"/> (<c>attr.sample_regs_user</c>), lowest bit first, in the
    /// layout of the architecture's uapi <c>asm/perf_regs.h</c>. False when ip or sp is missing.
    /// </summary>
    public static bool TryFromPerf(ArchDescriptor arch, ulong mask, ReadOnlySpan<ulong> values, out UnwindRegisters regs)
    {
        regs = default;
        if (!TryPerf(arch.PerfIp, mask, values, out ulong ip) || !TryPerf(arch.PerfSp, mask, values, out ulong sp))
            return false;
        TryPerf(arch.PerfFp, mask, values, out ulong fp);
        regs = new UnwindRegisters(ip, sp, fp);
        for (int d = 0; d < 32; d++)
        {
            int p = arch.PerfRegisterOf(d);
            if (p >= 0 && TryPerf(p, mask, values, out ulong v)) regs.Set(d, v);
        }
        return true;
    }

    /// <summary>perf register <paramref name="perfReg"/>'s value: its index among the set bits of the mask.</summary>
    public static bool TryPerf(int perfReg, ulong mask, ReadOnlySpan<ulong> values, out ulong value)
    {
        value = 0;
        if ((uint)perfReg >= 64 || (mask & (1UL << perfReg)) == 0) return false;
        int index = BitOperations.PopCount(mask & ((1UL << perfReg) - 1));
        if (index >= values.Length) return false;
        value = values[index];
        return true;
    }
}
