using System.Numerics;
using System.Runtime.CompilerServices;

namespace TraceUnwind.Perf;

/// <summary>
/// One event of a recording (perf's <c>evsel</c>): its attr, the sample ids the kernel gave its
/// per-CPU/per-thread instances, its name, and the sample layout computed once from the attr.
/// </summary>
public sealed class PerfEvent
{
    internal PerfEvent(int index, PerfEventAttr attr, ulong[] ids)
    {
        Index = index;
        Attr = attr;
        Ids = ids;
        Layout = new SampleLayout(attr);
        Name = attr.DefaultName();
    }

    /// <summary>Position in the file's attr list (perf's evsel idx).</summary>
    public int Index { get; }
    public PerfEventAttr Attr { get; }
    /// <summary>The ids from the attrs section / HEADER_ATTR (ID_INDEX may add more).</summary>
    public ulong[] Ids { get; internal set; }
    /// <summary>perf's event name (<c>cpu-clock</c>, <c>sched:sched_switch</c>): EVENT_DESC, EVENT_UPDATE, or derived from the attr.</summary>
    public string Name { get; internal set; }
    /// <summary>True when <see cref="Name"/> came from the file (EVENT_DESC / EVENT_UPDATE), not from the attr.</summary>
    public bool HasRecordedName { get; internal set; }

    internal SampleLayout Layout { get; }

    public override string ToString() => $"{Name} (#{Index}, sample_type 0x{(ulong)Attr.SampleType:x}, {Ids.Length} ids)";
}

/// <summary>
/// What an attr's <c>sample_type</c> means for the record layout, computed once per event
/// (linux-perf-event-reader's RecordParseInfo; perf's <c>evsel->id_pos</c>/<c>is_pos</c>).
/// </summary>
internal sealed class SampleLayout
{
    /// <summary>Every sample_type bit this reader parses (IP .. WEIGHT_STRUCT).</summary>
    public const ulong KnownSampleTypes = (1UL << 25) - 1;

    public SampleLayout(PerfEventAttr attr)
    {
        ulong t = (ulong)attr.SampleType;
        SampleType = attr.SampleType;
        UnknownBits = t & ~KnownSampleTypes;

        // The fixed u64 words that start a SAMPLE: IDENTIFIER, IP, TID, TIME, ADDR, ID, STREAM_ID, CPU, PERIOD.
        int w = 0;
        if (Has(PerfSampleType.Identifier)) w++;
        if (Has(PerfSampleType.Ip)) w++;
        if (Has(PerfSampleType.Tid)) w++;
        SampleTimeOffset = Has(PerfSampleType.Time) ? 8 + 8 * w : -1;
        if (Has(PerfSampleType.Time)) w++;
        if (Has(PerfSampleType.Addr)) w++;
        // perf's id_pos (evsel__calc_id_pos): IDENTIFIER is word 0; else ID after IP, TID, TIME, ADDR.
        SampleIdOffset = Has(PerfSampleType.Identifier) ? 8 : Has(PerfSampleType.Id) ? 8 + 8 * w : -1;

        // The sample_id trailer of other records: { pid,tid } { time } { id } { stream_id } { cpu,res } { identifier }.
        int n = 0;
        if (Has(PerfSampleType.Tid)) n++;
        if (Has(PerfSampleType.Time)) n++;
        if (Has(PerfSampleType.Id)) n++;
        if (Has(PerfSampleType.StreamId)) n++;
        if (Has(PerfSampleType.Cpu)) n++;
        if (Has(PerfSampleType.Identifier)) n++;
        TrailerSize = attr.SampleIdAll ? 8 * n : 0;
        // perf's is_pos counted from the end: IDENTIFIER is last; else ID sits before STREAM_ID and CPU.
        if (!attr.SampleIdAll) TrailerIdFromEnd = -1;
        else if (Has(PerfSampleType.Identifier)) TrailerIdFromEnd = 8;
        else if (Has(PerfSampleType.Id)) TrailerIdFromEnd = 8 * (1 + (Has(PerfSampleType.Cpu) ? 1 : 0) + (Has(PerfSampleType.StreamId) ? 1 : 0));
        else TrailerIdFromEnd = -1;

        // Fixed offsets for decoding a held copy again (RecordDecoder.TryDecodeSampleAgain): only when every field is a
        // fixed u64 before or at the callchain (no READ, nothing after CALLCHAIN).
        const PerfSampleType FixedFields = PerfSampleType.Identifier | PerfSampleType.Ip | PerfSampleType.Tid | PerfSampleType.Time
            | PerfSampleType.Addr | PerfSampleType.Id | PerfSampleType.StreamId | PerfSampleType.Cpu | PerfSampleType.Period | PerfSampleType.Callchain;
        if ((SampleType & ~FixedFields) == 0 && Has(PerfSampleType.Callchain))
        {
            int at = 8;
            int Next(PerfSampleType bit) { if (!Has(bit)) return -1; int o = at; at += 8; return o; }
            IdentifierAt = Next(PerfSampleType.Identifier);
            IpAt = Next(PerfSampleType.Ip);
            TidAt = Next(PerfSampleType.Tid);
            TimeAt = Next(PerfSampleType.Time);
            AddrAt = Next(PerfSampleType.Addr);
            IdAt = Next(PerfSampleType.Id);
            StreamIdAt = Next(PerfSampleType.StreamId);
            CpuAt = Next(PerfSampleType.Cpu);
            PeriodAt = Next(PerfSampleType.Period);
            CallchainAt = at;
        }
        else CallchainAt = -1;

        UserRegsCount = BitOperations.PopCount(attr.SampleRegsUser);
        IntrRegsCount = BitOperations.PopCount(attr.SampleRegsIntr);
        BranchHwIndex = (attr.BranchSampleType & PerfBranchSampleType.HwIndex) != 0;
        BranchCounters = (attr.BranchSampleType & PerfBranchSampleType.Counters) != 0;
        ReadFormat = attr.ReadFormat;
    }

    public PerfSampleType SampleType { get; }
    public ulong UnknownBits { get; }
    /// <summary>Byte offset of TIME in a SAMPLE record (from the record start), -1 if absent.</summary>
    public int SampleTimeOffset { get; }
    /// <summary>Byte offset of the id used to find the event in a SAMPLE record, -1 if none.</summary>
    public int SampleIdOffset { get; }
    /// <summary>Size of the sample_id trailer of non-SAMPLE kernel records (0 without sample_id_all).</summary>
    public int TrailerSize { get; }
    /// <summary>Distance of the id word's start from the record end in the trailer, -1 if none.</summary>
    public int TrailerIdFromEnd { get; }
    public int UserRegsCount { get; }
    public int IntrRegsCount { get; }
    public bool BranchHwIndex { get; }
    public bool BranchCounters { get; }
    public PerfReadFormat ReadFormat { get; }

    /// <summary>Byte offsets of the SAMPLE fields (-1 absent) when <see cref="CallchainAt"/> &gt;= 0: the layout is fixed up to the callchain, which ends it.</summary>
    public int IdentifierAt { get; } = -1;
    public int IpAt { get; } = -1;
    public int TidAt { get; } = -1;
    public int TimeAt { get; } = -1;
    public int AddrAt { get; } = -1;
    public int IdAt { get; } = -1;
    public int StreamIdAt { get; } = -1;
    public int CpuAt { get; } = -1;
    public int PeriodAt { get; } = -1;
    /// <summary>Offset of the callchain's nr in a fixed layout, -1 when the layout is not fixed.</summary>
    public int CallchainAt { get; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Has(PerfSampleType bit) => (SampleType & bit) != 0;
}
