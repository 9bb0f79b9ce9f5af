using System.Text;
using TraceUnwind.Buffers;
using TraceUnwind.Diagnostics;

namespace TraceUnwind.Perf;

/// <summary>
/// Parses the feature payloads a reader needs (tools/perf/util/header.c <c>process_*</c>;
/// tools/perf/Documentation/perf.data-file-format.txt). The same payloads appear as file-mode
/// feature sections and in pipe-mode HEADER_FEATURE records (after the u64 feature id).
/// A payload is bounded by its section, so damage inside one is counted and that feature skipped.
/// </summary>
internal static class FeatureParser<TOrder> where TOrder : struct, IByteOrder
{
    /// <summary>Caps on counts inside features (an EVENT_DESC with a billion events is damage).</summary>
    private const int MaxListCount = 1 << 20;

    public static void Parse(PerfSession session, PerfFeature feature, ReadOnlySpan<byte> payload, long offset, ErrorTally tally)
    {
        if (payload.Length > PerfSession.MaxRawFeatureBytes)
        {
            tally.Add("perf.feature.too-large", new InputPosition(session.SourceName, offset),
                $"feature {feature} payload of {payload.Length} bytes not kept", TallySeverity.Notice);
            return;
        }
        session.SetRawFeature(feature, payload.ToArray());
        var c = new SpanCursor<TOrder>(payload, offset);
        try
        {
            switch (feature)
            {
                case PerfFeature.Hostname: session.Hostname = ReadString(ref c); break;
                case PerfFeature.OsRelease: session.OsRelease = ReadString(ref c); break;
                case PerfFeature.Version: session.PerfVersion = ReadString(ref c); break;
                case PerfFeature.Arch: session.Arch = ReadString(ref c); break;
                case PerfFeature.CpuDesc: session.CpuDesc = ReadString(ref c); break;
                case PerfFeature.CpuId: session.CpuId = ReadString(ref c); break;
                case PerfFeature.NrCpus:
                    // write_nrcpus(): nr_cpus_avail first, then nr_cpus_online (the old doc has them swapped).
                    session.NrCpusAvailable = (int)Math.Min(c.ReadUInt32(), int.MaxValue);
                    session.NrCpusOnline = (int)Math.Min(c.ReadUInt32(), int.MaxValue);
                    break;
                case PerfFeature.Cmdline: session.Cmdline = ReadStringList(ref c); break;
                case PerfFeature.EventDesc: ParseEventDesc(session, ref c); break;
                case PerfFeature.BuildId: ParseBuildIds(session, payload, offset, tally); break;
                case PerfFeature.SampleTime:
                    session.FirstSampleTime = c.ReadUInt64();
                    session.LastSampleTime = c.ReadUInt64();
                    break;
                case PerfFeature.Compressed:
                    c.ReadUInt32(); // version
                    session.CompressionType = c.ReadUInt32();
                    session.CompressionLevel = c.ReadUInt32();
                    break;
                default:
                    break; // kept raw only
            }
        }
        catch (TraceFormatException e)
        {
            tally.Add("perf.feature.damaged", new InputPosition(session.SourceName, e.Position.ByteOffset),
                $"feature {feature} (payload at 0x{offset:x}, {payload.Length} bytes): {e.Detail}");
        }
    }

    /// <summary><c>u32 len; char s[len]</c>, NUL-padded (to 64 by perf's NAME_ALIGN).</summary>
    public static string ReadString(ref SpanCursor<TOrder> c)
    {
        long at = c.AbsoluteOffset;
        uint len = c.ReadUInt32();
        if (len > (uint)c.Remaining)
            ThrowHelper.Format($"string of {len} bytes runs past its section ({c.Remaining} bytes left)", at);
        var bytes = c.ReadBytes((int)len);
        int nul = bytes.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? bytes : bytes[..nul]);
    }

    /// <summary><c>u32 nr; string[nr]</c>.</summary>
    public static string[] ReadStringList(ref SpanCursor<TOrder> c)
    {
        long at = c.AbsoluteOffset;
        uint nr = c.ReadUInt32();
        // Every string takes at least its 4-byte length: a count beyond that is damage.
        if (nr > (uint)c.Remaining / 4)
            ThrowHelper.Format($"string list count {nr} larger than its section allows", at);
        var list = new string[nr];
        for (int i = 0; i < list.Length; i++) list[i] = ReadString(ref c);
        return list;
    }

    /// <summary>
    /// <c>u32 nr; u32 attr_size; { attr[attr_size]; u32 nr_ids; string name; u64 ids[nr_ids] }[nr]</c>.
    /// Names go to the event whose ids match (else the one at the same position).
    /// </summary>
    private static void ParseEventDesc(PerfSession session, ref SpanCursor<TOrder> c)
    {
        long at = c.AbsoluteOffset;
        uint nr = c.ReadUInt32();
        uint attrSize = c.ReadUInt32();
        if (nr > MaxListCount || attrSize < PerfEventAttr.SizeVer0 || attrSize > PerfEventAttr.MaxSize)
            ThrowHelper.Format($"EVENT_DESC with {nr} events of attr size {attrSize}", at);
        for (int i = 0; i < nr; i++)
        {
            var attrBytes = c.ReadBytes((int)attrSize);
            long idsAt = c.AbsoluteOffset;
            uint nrIds = c.ReadUInt32();
            string name = ReadString(ref c);
            if (nrIds > (uint)c.Remaining / 8)
                ThrowHelper.Format($"EVENT_DESC event {i} claims {nrIds} ids, more than its section holds", idsAt);
            PerfEvent? ev = null;
            for (int k = 0; k < nrIds; k++)
            {
                ulong id = c.ReadUInt64();
                ev ??= session.FindEventById(id);
            }
            if (ev is null && i < session.Events.Count) ev = session.Events[i];
            if (ev is null)
            {
                // Pipe mode can send EVENT_DESC before any HEADER_ATTR is matched; make the event from it.
                continue;
            }
            _ = attrBytes;
            if (name.Length > 0)
            {
                ev.Name = name;
                ev.HasRecordedName = true;
            }
        }
    }

    /// <summary>
    /// A sequence of <c>perf_record_header_build_id</c>:
    /// <c>{ u32 type; u16 misc; u16 size; s32 pid; u8 build_id[20]; u8 size; u8 res[3]; char filename[] }</c>.
    /// </summary>
    private static void ParseBuildIds(PerfSession session, ReadOnlySpan<byte> payload, long offset, ErrorTally tally)
    {
        int pos = 0;
        while (payload.Length - pos >= 8)
        {
            ushort size = TOrder.UInt16(payload[(pos + 6)..]);
            if (size < 36 || size > payload.Length - pos)
            {
                tally.Add("perf.feature.damaged", new InputPosition(session.SourceName, offset + pos),
                    $"BUILD_ID entry of size {size} at 0x{offset + pos:x} does not fit its section ({payload.Length - pos} bytes left)");
                return;
            }
            var rec = payload.Slice(pos, size);
            session.AddBuildId(ParseBuildIdEntry(rec));
            pos += size;
        }
    }

    /// <summary>One build-id entry (also the body of a HEADER_BUILD_ID record); <paramref name="rec"/> is at least 36 bytes.</summary>
    public static PerfBuildId ParseBuildIdEntry(ReadOnlySpan<byte> rec)
    {
        ushort misc = TOrder.UInt16(rec[4..]);
        int pid = unchecked((int)TOrder.UInt32(rec[8..]));
        int idSize = (misc & PerfRecordMisc.BuildIdSize) != 0 ? Math.Min((int)rec[32], 20) : 20;
        var id = rec.Slice(12, idSize).ToArray();
        var name = rec[36..];
        int nul = name.IndexOf((byte)0);
        return new PerfBuildId(pid, misc, id, Encoding.UTF8.GetString(nul < 0 ? name : name[..nul]));
    }
}
