using System.Text.Json;
using TraceUnwind.Unwinding.Elf;

namespace TraceUnwind.Unwinding.SFrame;

/// <summary>
/// A machine-readable decode of an SFrame section (<c>traceunwind sframe --json</c>): the file,
/// the section, every header field, every FDE with its attribute bits, every FRE with its raw data
/// words (signed and unsigned) and the CFA/RA/FP rules they mean. The schema is the one of the
/// reference decodes in <c>fixtures/sframe/*/*.sframe.json</c>.
/// <code>
/// { "file", "elf": {type, machine, endian}, "section": {addr, size, file_offset, sh_type},
///   "header": {magic, version, flags, flags_names[], abi_arch, abi_name, cfa_fixed_fp_offset, cfa_fixed_ra_offset,
///              auxhdr_len, num_fdes, num_fres, fre_len, fdeoff, freoff, header_size},
///   "fdes": [{index, fde_idx_offset, func_start_offset, func_start_addr, func_size, func_start_fre_off, num_fres,
///             info, info2, rep_size, fre_type, fre_type_name, pc_type, pauth_key, info_bit6, signal, fde_type,
///             fde_type_name, "fres": [{index, offset_in_section, start_ip_off, info, cfa_base_reg_id, cfa_base_reg,
///             dataword_count, dataword_size, mangled_ra, datawords_signed[], datawords_unsigned[], ra_undefined,
///             size, start_addr (PC type INC only), cfa{}, ra{}, fp{}}], fre_bytes}],
///   "decoded_num_fres" }
/// </code>
/// Rules: <c>{"rule": "reg_offset", reg, reg_name, offset, deref[, ctl]}</c>,
/// <c>{"rule": "cfa_offset", offset, deref, from_fre[, ctl][, padding]}</c>, <c>{"rule": "retain"[, padding]}</c>,
/// <c>{"rule": "undefined"}</c> for all three in an RA-undefined row.
/// </summary>
public static class SFrameJsonWriter
{
    /// <summary>Writes the decode of <paramref name="section"/>, found at <paramref name="location"/> in <paramref name="elf"/>.</summary>
    public static void Write(Utf8JsonWriter w, ElfFile elf, in ElfSFrameLocation location, SFrameSection section, string fileName)
    {
        w.WriteStartObject();
        w.WriteString("file", fileName);
        w.WriteStartObject("elf");
        w.WriteString("type", elf.Header.TypeName);
        w.WriteNumber("machine", elf.Machine);
        w.WriteString("endian", elf.IsBigEndian ? "big" : "little");
        w.WriteEndObject();

        ulong size = (ulong)location.Length;
        uint shType = location.SectionType;
        foreach (var s in elf.Sections)
            if (s.Type != ElfConstants.ShtNull && s.Address == location.Address && (s.Name == ".sframe" || s.Type == ElfConstants.ShtGnuSFrame))
            {
                size = s.Size;
                shType = s.Type;
                break;
            }
        w.WriteStartObject("section");
        w.WriteNumber("addr", location.Address);
        w.WriteNumber("size", size);
        w.WriteNumber("file_offset", location.FileOffset);
        w.WriteNumber("sh_type", shType);
        w.WriteEndObject();

        WriteBody(w, section);
        w.WriteEndObject();
    }

    /// <summary>The section part: <c>header</c>, <c>fdes</c>, <c>decoded_num_fres</c> (inside an open object).</summary>
    public static void WriteBody(Utf8JsonWriter w, SFrameSection s)
    {
        var h = s.Header;
        w.WriteStartObject("header");
        w.WriteNumber("magic", h.Magic);
        w.WriteNumber("version", h.Version);
        w.WriteNumber("flags", (byte)h.Flags);
        w.WriteStartArray("flags_names");
        if ((h.Flags & SFrameFlags.FdeSorted) != 0) w.WriteStringValue("FDE_SORTED");
        if ((h.Flags & SFrameFlags.FramePointer) != 0) w.WriteStringValue("FRAME_POINTER");
        if ((h.Flags & SFrameFlags.FdeFuncStartPcRel) != 0) w.WriteStringValue("FDE_FUNC_START_PCREL");
        w.WriteEndArray();
        w.WriteNumber("abi_arch", (byte)h.Abi);
        w.WriteString("abi_name", h.AbiName);
        w.WriteNumber("cfa_fixed_fp_offset", h.CfaFixedFpOffset);
        w.WriteNumber("cfa_fixed_ra_offset", h.CfaFixedRaOffset);
        w.WriteNumber("auxhdr_len", h.AuxHeaderLength);
        w.WriteNumber("num_fdes", h.NumFdes);
        w.WriteNumber("num_fres", h.NumFres);
        w.WriteNumber("fre_len", h.FreLength);
        w.WriteNumber("fdeoff", h.FdeOffset);
        w.WriteNumber("freoff", h.FreOffset);
        w.WriteNumber("header_size", h.Size);
        w.WriteEndObject();

        w.WriteStartArray("fdes");
        foreach (ref readonly var fde in s.Fdes)
            WriteFde(w, s, fde);
        w.WriteEndArray();
        w.WriteNumber("decoded_num_fres", s.Fres.Length);
    }

    private static void WriteFde(Utf8JsonWriter w, SFrameSection s, in SFrameFde fde)
    {
        w.WriteStartObject();
        w.WriteNumber("index", fde.Index);
        w.WriteNumber("fde_idx_offset", fde.EntryOffset);
        w.WriteNumber("func_start_offset", fde.StartOffset);
        w.WriteNumber("func_start_addr", fde.Start);
        w.WriteNumber("func_size", fde.Size);
        w.WriteNumber("func_start_fre_off", fde.FreOffset);
        w.WriteNumber("num_fres", fde.NumFres);
        w.WriteNumber("info", fde.Info);
        w.WriteNumber("info2", fde.Info2);
        w.WriteNumber("rep_size", fde.RepSize);
        w.WriteNumber("fre_type", (int)fde.FreType);
        w.WriteString("fre_type_name", fde.FreType switch
        {
            SFrameFreType.Addr1 => "ADDR1",
            SFrameFreType.Addr2 => "ADDR2",
            SFrameFreType.Addr4 => "ADDR4",
            _ => "INVALID",
        });
        w.WriteString("pc_type", fde.PcType == SFramePcType.Mask ? "MASK" : "INC");
        w.WriteNumber("pauth_key", fde.PauthKey);
        w.WriteNumber("info_bit6", fde.InfoBit6);
        w.WriteBoolean("signal", fde.IsSignalFrame);
        w.WriteNumber("fde_type", (int)fde.FdeType);
        w.WriteString("fde_type_name", fde.FdeType switch
        {
            SFrameFdeType.Default => "DEFAULT",
            SFrameFdeType.Flex => "FLEX",
            _ => "UNKNOWN",
        });
        w.WriteStartArray("fres");
        int j = 0;
        foreach (ref readonly var fre in s.FresOf(fde))
            WriteFre(w, s, fde, fre, j++);
        w.WriteEndArray();
        w.WriteNumber("fre_bytes", fde.FreBytes);
        w.WriteEndObject();
    }

    private static void WriteFre(Utf8JsonWriter w, SFrameSection s, in SFrameFde fde, in SFrameFre fre, int index)
    {
        var abi = s.Header.Abi;
        w.WriteStartObject();
        w.WriteNumber("index", index);
        w.WriteNumber("offset_in_section", fre.SectionOffset);
        w.WriteNumber("start_ip_off", fre.StartOffset);
        w.WriteNumber("info", fre.Info);
        w.WriteNumber("cfa_base_reg_id", fre.BaseRegId);
        w.WriteString("cfa_base_reg", fre.IsSpBased ? "sp" : "fp");
        w.WriteNumber("dataword_count", fre.DataWordCount);
        w.WriteNumber("dataword_size", fre.DataWordBytes);
        w.WriteBoolean("mangled_ra", fre.MangledRa);
        w.WriteStartArray("datawords_signed");
        for (int i = 0; i < fre.DataWordCount; i++) w.WriteNumberValue(s.Word(fre, i));
        w.WriteEndArray();
        w.WriteStartArray("datawords_unsigned");
        for (int i = 0; i < fre.DataWordCount; i++) w.WriteNumberValue(s.UWord(fre, i));
        w.WriteEndArray();
        w.WriteBoolean("ra_undefined", fre.RaUndefined);
        w.WriteNumber("size", fre.Size);
        if (fde.PcType == SFramePcType.Inc) w.WriteNumber("start_addr", fde.Start + fre.StartOffset);

        if (fre.RaUndefined)
        {
            foreach (var name in (ReadOnlySpan<string>)["cfa", "ra", "fp"])
            {
                w.WriteStartObject(name);
                w.WriteString("rule", "undefined");
                w.WriteEndObject();
            }
            w.WriteEndObject();
            return;
        }

        var h = s.Header;
        bool s390 = abi == SFrameAbi.S390xBigEndian;
        long Cfa(int raw) => s390 ? (long)raw * 8 + 160 : raw;
        var arch = s.Arch;
        int n = fre.DataWordCount;
        if (fde.FdeType != SFrameFdeType.Flex)
        {
            uint baseReg = fre.IsSpBased ? arch?.SpRegister ?? 0 : arch?.FpRegister ?? 0;
            w.WriteStartObject("cfa");
            w.WriteString("rule", "reg_offset");
            w.WriteNumber("reg", baseReg);
            w.WriteString("reg_name", fre.IsSpBased ? "sp" : "fp");
            w.WriteNumber("offset", Cfa(s.Word(fre, 0)));
            w.WriteBoolean("deref", false);
            w.WriteEndObject();
            int idx = 1;
            w.WriteStartObject("ra");
            if (h.CfaFixedRaOffset != 0) CfaOffset(w, h.CfaFixedRaOffset, fromFre: false);
            else if (idx < n)
            {
                int ra = s.Word(fre, idx++);
                if (ra == 0) Retain(w, padding: true);
                else CfaOffset(w, ra, fromFre: true);
            }
            else Retain(w, padding: false);
            w.WriteEndObject();
            w.WriteStartObject("fp");
            if (h.CfaFixedFpOffset != 0) CfaOffset(w, h.CfaFixedFpOffset, fromFre: false);
            else if (idx < n) CfaOffset(w, s.Word(fre, idx), fromFre: true);
            else w.WriteString("rule", "retain");
            w.WriteEndObject();
        }
        else
        {
            w.WriteStartObject("cfa");
            if (n >= 2) RegRule(w, abi, s.UWord(fre, 0), Cfa(s.Word(fre, 1)), fromFre: null);
            else w.WriteString("rule", "invalid");
            w.WriteEndObject();
            int idx = 2;
            bool padding = false;
            w.WriteStartObject("ra");
            if (idx < n && s.UWord(fre, idx) == 0) { padding = true; idx++; }
            if (!padding && idx + 1 < n)
            {
                RegRule(w, abi, s.UWord(fre, idx), s.Word(fre, idx + 1), fromFre: true);
                idx += 2;
            }
            else if (h.CfaFixedRaOffset != 0)
            {
                CfaOffset(w, h.CfaFixedRaOffset, fromFre: false);
                if (padding) w.WriteBoolean("padding", true);
            }
            else
            {
                w.WriteString("rule", "retain");
                if (padding) w.WriteBoolean("padding", true);
            }
            w.WriteEndObject();
            w.WriteStartObject("fp");
            if (idx + 1 < n && s.UWord(fre, idx) != 0) RegRule(w, abi, s.UWord(fre, idx), s.Word(fre, idx + 1), fromFre: true);
            else if (h.CfaFixedFpOffset != 0) CfaOffset(w, h.CfaFixedFpOffset, fromFre: false);
            else w.WriteString("rule", "retain");
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static void CfaOffset(Utf8JsonWriter w, long offset, bool fromFre)
    {
        w.WriteString("rule", "cfa_offset");
        w.WriteNumber("offset", offset);
        w.WriteBoolean("deref", true);
        w.WriteBoolean("from_fre", fromFre);
    }

    private static void Retain(Utf8JsonWriter w, bool padding)
    {
        w.WriteString("rule", "retain");
        w.WriteBoolean("padding", padding);
    }

    /// <summary>A flex (control, offset) pair.</summary>
    private static void RegRule(Utf8JsonWriter w, SFrameAbi abi, uint ctl, long offset, bool? fromFre)
    {
        bool regP = (ctl & 1) != 0, deref = (ctl & 2) != 0;
        if (regP)
        {
            w.WriteString("rule", "reg_offset");
            w.WriteNumber("reg", ctl >> 3);
            w.WriteString("reg_name", SFrameDumper.RegisterName(abi, ctl >> 3));
        }
        else w.WriteString("rule", "cfa_offset");
        w.WriteNumber("ctl", ctl);
        w.WriteNumber("offset", offset);
        w.WriteBoolean("deref", deref);
        if (fromFre is bool f) w.WriteBoolean("from_fre", f);
    }
}
