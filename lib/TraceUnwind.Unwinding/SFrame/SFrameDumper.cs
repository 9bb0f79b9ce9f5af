using System.Globalization;
using System.Text;
using TraceUnwind.Unwinding.Elf;

namespace TraceUnwind.Unwinding.SFrame;

/// <summary>
/// Prints an SFrame section in the layout of binutils' <c>objdump --sframe</c> (libsframe
/// <c>sframe-dump.c</c> of binutils 2.46/2.47, with objdump's "file format" and "Contents of
/// the SFrame section" lines around it), so the output can be diffed against objdump's. Every
/// column, padding and quirk is kept: e.g. flex rows show a load from a CFA-based address
/// without parentheses (<c>sframe_format_fre_disp</c> only honours deref_p with reg_p), and a
/// default row's FP prints the header's fixed FP offset when there is one.
/// </summary>
public static class SFrameDumper
{
    /// <summary>
    /// Writes <c>\nNAME:     file format TARGET\n\nContents of the SFrame section .sframe:</c> and the dump,
    /// as objdump does for one file.
    /// </summary>
    public static void WriteObjdump(TextWriter w, SFrameSection section, string displayName, string bfdTarget, string sectionName = ".sframe")
    {
        w.Write('\n');
        w.Write(displayName);
        w.Write(":     file format ");
        w.Write(bfdTarget);
        w.Write("\n\n");
        w.Write("Contents of the SFrame section ");
        w.Write(sectionName);
        w.Write(':');
        WriteDump(w, section);
    }

    /// <summary>libsframe's <c>dump_sframe</c>: the header, then every function with its rows.</summary>
    public static void WriteDump(TextWriter w, SFrameSection s)
    {
        var h = s.Header;
        w.Write("\n  Header :\n\n");
        w.Write("    Version: ");
        w.Write(h.Version switch { 1 => "SFRAME_VERSION_1", 2 => "SFRAME_VERSION_2", 3 => "SFRAME_VERSION_3", 0 => "NULL", _ => "(null)" });
        w.Write('\n');
        WriteFlags(w, h);
        if (h.CfaFixedFpOffset != 0) w.Write($"    CFA fixed FP offset: {h.CfaFixedFpOffset}\n");
        if (h.CfaFixedRaOffset != 0) w.Write($"    CFA fixed RA offset: {h.CfaFixedRaOffset}\n");
        w.Write($"    Num FDEs: {(int)h.NumFdes}\n");
        w.Write($"    Num FREs: {(int)h.NumFres}\n");
        w.Write("\n  Function Index :\n");
        foreach (ref readonly var fde in s.Fdes)
        {
            WriteFunction(w, s, fde);
            w.Write('\n');
        }
    }

    private static void WriteFlags(TextWriter w, in SFrameHeader h)
    {
        int flags = (byte)h.Flags;
        string prefix = "Flags: ";
        if (flags == 0)
        {
            w.Write(Pad(prefix, 11, right: true));
            w.Write("NONE\n");
            return;
        }
        void Print(int bit, string name)
        {
            if ((flags & bit) == 0) return;
            flags &= ~bit;
            w.Write(Pad(prefix, 11, right: true));
            w.Write(name);
            if (flags != 0) w.Write(',');
            w.Write('\n');
            prefix = " ";
        }
        Print(0x1, "SFRAME_F_FDE_SORTED");
        // SFRAME_F_FRAME_POINTER was removed in V3 (a residual bit prints as a number).
        if (h.Version == 2) Print(0x2, "SFRAME_F_FRAME_POINTER");
        Print(0x4, "SFRAME_F_FDE_FUNC_START_PCREL");
        if (flags != 0)
        {
            w.Write(Pad(prefix, 11, right: true));
            w.Write(flags.ToString(CultureInfo.InvariantCulture));
            w.Write('\n');
        }
    }

    private static void WriteFunction(TextWriter w, SFrameSection s, in SFrameFde fde)
    {
        w.Write($"\n    func idx [{fde.Index}]: pc = 0x{fde.Start:x}, size = {(int)fde.Size} bytes");
        string attrs = (fde.IsSignalFrame ? "S" : "") + (fde.FdeType == SFrameFdeType.Flex ? "F" : "");
        if (attrs.Length > 0) w.Write($", attr = \"{attrs}\"");
        if (s.Header.Abi is SFrameAbi.AArch64BigEndian or SFrameAbi.AArch64LittleEndian && fde.PauthKey == 1)
            w.Write(", pauth = B key");
        bool mask = fde.PcType == SFramePcType.Mask;
        w.Write("\n    ");
        w.Write(Pad("STARTPC", 7));
        w.Write(Pad(mask ? "[m]" : "   ", 8));
        w.Write(' ');
        w.Write(Pad("CFA", 10));
        w.Write(Pad("FP", 10));
        w.Write(Pad("RA", 13));
        foreach (ref readonly var fre in s.FresOf(fde))
        {
            ulong pc = mask ? fre.StartOffset : fde.Start + fre.StartOffset;
            w.Write("\n    ");
            w.Write(pc.ToString("x16", CultureInfo.InvariantCulture));
            if (fre.RaUndefined)
            {
                w.Write("  RA undefined");
                continue;
            }
            if (fde.FdeType == SFrameFdeType.Flex) WriteFlexRow(w, s, fre);
            else WriteDefaultRow(w, s, fre);
        }
    }

    // libsframe accessors: sframe_get_fre_offset / sframe_get_fre_udata report "not present"
    // when the row has fewer words than the index asks for.
    private static bool TryWord(SFrameSection s, in SFrameFre fre, int i, out int value)
    {
        value = 0;
        if (fre.DataWordCount < i + 1) return false;
        value = s.Word(fre, i);
        return true;
    }

    private static bool TryUWord(SFrameSection s, in SFrameFre fre, int i, out uint value)
    {
        value = 0;
        if (fre.DataWordCount < i + 1) return false;
        value = s.UWord(fre, i);
        return true;
    }

    private static bool IsS390x(SFrameSection s) => s.Header.Abi == SFrameAbi.S390xBigEndian;

    private static int DecodeCfa(SFrameSection s, int raw) => IsS390x(s) ? raw * 8 + 160 : raw;

    private static void WriteDefaultRow(TextWriter w, SFrameSection s, in SFrameFre fre)
    {
        var h = s.Header;
        bool fixedRa = h.CfaFixedRaOffset != 0, fixedFp = h.CfaFixedFpOffset != 0;
        bool v2s390 = IsS390x(s) && h.Version == 2;

        TryWord(s, fre, 0, out int cfa);
        w.Write("  ");
        w.Write(Pad((fre.IsSpBased ? "sp" : "fp") + "+" + DecodeCfa(s, cfa).ToString(CultureInfo.InvariantCulture), 10));

        // sframe_fre_get_fp_offset: index 1 when RA is fixed, else 2; the fixed FP offset wins for default rows.
        int fp;
        bool fpOk;
        if (fixedFp) { fp = h.CfaFixedFpOffset; fpOk = true; }
        else fpOk = TryWord(s, fre, fixedRa ? 1 : 2, out fp);
        string fpText = !fpOk ? "u" : v2s390 && (fp & 1) != 0 ? "r" + (fp >> 1).ToString(CultureInfo.InvariantCulture) : Signed("c", fp);
        w.Write(Pad(fpText, 10));

        string raText;
        if (fixedRa) raText = "f";
        else if (TryWord(s, fre, 1, out int ra))
            raText = ra == 0 ? "U" : v2s390 && (ra & 1) != 0 ? "r" + (ra >> 1).ToString(CultureInfo.InvariantCulture) : Signed("c", ra);
        else raText = "u";
        w.Write(Pad(raText + (fre.MangledRa ? "[s]" : "   "), 13));
    }

    private static void WriteFlexRow(TextWriter w, SFrameSection s, in SFrameFre fre)
    {
        var h = s.Header;
        bool fixedRa = h.CfaFixedRaOffset != 0, fixedFp = h.CfaFixedFpOffset != 0;

        TryUWord(s, fre, 0, out uint cfaCtl);
        TryWord(s, fre, 1, out int cfaOff);
        w.Write("  ");
        w.Write(Pad(Disp(s, cfaCtl, DecodeCfa(s, cfaOff)), 10));

        // RA: control word at 2, offset at 3 (sframe_fre_get_ra_offset falls back to the fixed offset).
        bool raCtlOk = TryUWord(s, fre, 2, out uint raCtl);
        bool raOffOk = TryWord(s, fre, 3, out int raOff);
        if (!raOffOk && fixedRa) raOff = h.CfaFixedRaOffset;

        // FP: control word at 4, or 3 after a padding RA word; sframe_fre_get_fp_offset reads the
        // offset at 4 after padding, else 5, and falls back to the fixed FP offset.
        int fpIdx = raCtlOk && raCtl == 0 ? 3 : 4;
        bool fpCtlOk = TryUWord(s, fre, fpIdx, out uint fpCtl);
        bool fpOffOk = TryWord(s, fre, raCtlOk && raCtl == 0 ? 4 : 5, out int fpOff);
        if (!fpOffOk && fixedFp) { fpOff = h.CfaFixedFpOffset; fpOffOk = true; }
        w.Write(Pad(fpCtlOk && fpOffOk ? Disp(s, fpCtl, fpOff) : "u", 10));

        string raText = !raCtlOk ? (fixedRa ? "f" : "u") : raCtl == 0 ? "U" : Disp(s, raCtl, raOff);
        w.Write(Pad(raText + (fre.MangledRa ? "[s]" : "   "), 13));
    }

    /// <summary>
    /// <c>sframe_format_fre_disp</c>: <c>reg+off</c>, <c>(reg+off)</c> for a load, <c>c+off</c> for
    /// CFA-based; register names <c>sp</c>/<c>fp</c> per ABI, else <c>rN</c> (DWARF number).
    /// </summary>
    private static string Disp(SFrameSection s, uint ctl, int offset)
    {
        bool regP = (ctl & 1) != 0;
        bool deref = regP && (ctl & 2) != 0;
        string name = regP ? RegisterName(s.Header.Abi, ctl >> 3) : "c";
        string body = Signed(name, offset);
        return deref ? "(" + body + ")" : body;
    }

    /// <summary>objdump's register names: the ABI's SP and FP DWARF numbers are <c>sp</c> and <c>fp</c>, others <c>rN</c>.</summary>
    public static string RegisterName(SFrameAbi abi, uint dwarf)
    {
        (uint sp, uint fp) = abi switch
        {
            SFrameAbi.Amd64LittleEndian => (7u, 6u),
            SFrameAbi.AArch64BigEndian or SFrameAbi.AArch64LittleEndian => (31u, 29u),
            SFrameAbi.S390xBigEndian => (15u, 11u),
            _ => (uint.MaxValue, uint.MaxValue),
        };
        return dwarf == sp ? "sp" : dwarf == fp ? "fp" : "r" + dwarf.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>printf <c>"%s%+d"</c>.</summary>
    private static string Signed(string prefix, long v) =>
        prefix + (v >= 0 ? "+" : "") + v.ToString(CultureInfo.InvariantCulture);

    private static string Pad(string s, int width, bool right = false) =>
        s.Length >= width ? s : right ? s.PadLeft(width) : s.PadRight(width);

    /// <summary>The dump of one ELF file as objdump prints it, or null when it has no SFrame data.</summary>
    /// <exception cref="SFrameException">The section cannot even be decoded.</exception>
    public static string? DumpFile(ElfFile elf, string displayName)
    {
        if (!elf.TryFindSFrame(out var loc)) return null;
        var section = SFrameSection.Parse(elf.GetSFrameData(loc), loc.Address,
            new SFrameParseOptions(Validate: false, Source: elf.Source, FileOffset: loc.FileOffset));
        var sb = new StringBuilder();
        using var sw = new StringWriter(sb) { NewLine = "\n" };
        WriteObjdump(sw, section, displayName, elf.Header.BfdTargetName);
        sw.Flush();
        return sb.ToString();
    }
}
