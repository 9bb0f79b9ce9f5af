using System.Buffers.Binary;
using TraceUnwind.Buffers;

namespace TraceUnwind.Perf;

/// <summary>
/// <c>struct perf_event_attr</c> as a file or pipe recorded it. The struct grows with the kernel
/// (<c>size</c> = 64, 72, 80, 96, 104, 112, 120, 128, 136, 144, ...); fields past <see cref="Size"/>
/// read as 0, and the bytes as written are kept in <see cref="RawBytes"/> so a writer can copy
/// fields this reader does not know. Layout (include/uapi/linux/perf_event.h):
/// <code>
///   0 u32 type            4 u32 size           8 u64 config
///  16 u64 sample_period   24 u64 sample_type  32 u64 read_format
///  40 u64 flags (bitfield: disabled, inherit, ... defer_callchain 38, defer_output 39)
///  48 u32 wakeup_events   52 u32 bp_type      56 u64 config1   64 u64 config2
///  72 u64 branch_sample_type  80 u64 sample_regs_user  88 u32 sample_stack_user  92 s32 clockid
///  96 u64 sample_regs_intr   104 u32 aux_watermark 108 u16 sample_max_stack 110 u16 reserved
/// 112 u32 aux_sample_size  116 u32 aux_action  120 u64 sig_data  128 u64 config3  (136 = VER8)
/// </code>
/// </summary>
public sealed class PerfEventAttr
{
    /// <summary>PERF_ATTR_SIZE_VER0: what <c>size == 0</c> means.</summary>
    public const int SizeVer0 = 64;
    /// <summary>The size this reader knows every field of (VER8).</summary>
    public const int SizeKnown = 136;
    /// <summary>A cap on attr sizes from the input (the kernel refuses attrs bigger than a page).</summary>
    public const int MaxSize = 4096;

    public uint Type { get; set; }
    /// <summary>The <c>size</c> field as recorded (0 in VER0 files is reported as 64).</summary>
    public uint Size { get; set; } = SizeKnown;
    public ulong Config { get; set; }
    public ulong SamplePeriod { get; set; }
    public PerfSampleType SampleType { get; set; }
    public PerfReadFormat ReadFormat { get; set; }
    public PerfAttrFlags Flags { get; set; }
    public uint WakeupEvents { get; set; }
    public uint BpType { get; set; }
    public ulong Config1 { get; set; }
    public ulong Config2 { get; set; }
    public ulong BranchSampleType { get; set; }
    public ulong SampleRegsUser { get; set; }
    public uint SampleStackUser { get; set; }
    public int ClockId { get; set; }
    public ulong SampleRegsIntr { get; set; }
    public uint AuxWatermark { get; set; }
    public ushort SampleMaxStack { get; set; }
    public uint AuxSampleSize { get; set; }
    public uint AuxAction { get; set; }
    public ulong SigData { get; set; }
    public ulong Config3 { get; set; }

    /// <summary>The attr bytes as read (in the input's byte order), or null for an attr built in code.</summary>
    public byte[]? RawBytes { get; set; }

    public bool SampleIdAll => (Flags & PerfAttrFlags.SampleIdAll) != 0;
    public bool ExcludeCallchainUser => (Flags & PerfAttrFlags.ExcludeCallchainUser) != 0;
    public bool DeferCallchain => (Flags & PerfAttrFlags.DeferCallchain) != 0;
    public bool DeferOutput => (Flags & PerfAttrFlags.DeferOutput) != 0;
    public bool Freq => (Flags & PerfAttrFlags.Freq) != 0;

    public bool Has(PerfSampleType bit) => (SampleType & bit) != 0;

    /// <summary>Parses an attr from <paramref name="bytes"/> (at least <see cref="SizeVer0"/> long; a shorter tail reads as 0).</summary>
    internal static PerfEventAttr Parse<TOrder>(ReadOnlySpan<byte> bytes) where TOrder : struct, IByteOrder
    {
        // Copy into a zeroed buffer of the known size: a tail the writer's perf did not have reads as 0.
        Span<byte> b = stackalloc byte[SizeKnown];
        b.Clear();
        bytes[..Math.Min(bytes.Length, SizeKnown)].CopyTo(b);
        var a = new PerfEventAttr
        {
            Type = TOrder.UInt32(b[0..]),
            Size = TOrder.UInt32(b[4..]),
            Config = TOrder.UInt64(b[8..]),
            SamplePeriod = TOrder.UInt64(b[16..]),
            SampleType = (PerfSampleType)TOrder.UInt64(b[24..]),
            ReadFormat = (PerfReadFormat)TOrder.UInt64(b[32..]),
            Flags = (PerfAttrFlags)ReadBitfield<TOrder>(b[40..]),
            WakeupEvents = TOrder.UInt32(b[48..]),
            BpType = TOrder.UInt32(b[52..]),
            Config1 = TOrder.UInt64(b[56..]),
            Config2 = TOrder.UInt64(b[64..]),
            BranchSampleType = TOrder.UInt64(b[72..]),
            SampleRegsUser = TOrder.UInt64(b[80..]),
            SampleStackUser = TOrder.UInt32(b[88..]),
            ClockId = unchecked((int)TOrder.UInt32(b[92..])),
            SampleRegsIntr = TOrder.UInt64(b[96..]),
            AuxWatermark = TOrder.UInt32(b[104..]),
            SampleMaxStack = TOrder.UInt16(b[108..]),
            AuxSampleSize = TOrder.UInt32(b[112..]),
            AuxAction = TOrder.UInt32(b[116..]),
            SigData = TOrder.UInt64(b[120..]),
            Config3 = TOrder.UInt64(b[128..]),
            RawBytes = bytes.ToArray(),
        };
        if (a.Size == 0) a.Size = SizeVer0;
        return a;
    }

    /// <summary>
    /// The flags bitfield. On a big-endian machine the C compiler allocates bitfields from the
    /// most significant bit, so perf (<c>perf_event__attr_swap</c> → <c>mem_bswap_64</c> plus a
    /// bit reversal of the word) reverses the bit order when it swaps; reading the u64 in the
    /// file's order and reversing its bits gives the little-endian numbering used here.
    /// </summary>
    private static ulong ReadBitfield<TOrder>(ReadOnlySpan<byte> b) where TOrder : struct, IByteOrder
    {
        ulong v = TOrder.UInt64(b);
        return TOrder.IsBigEndian ? ReverseBits(v) : v;
    }

    internal static ulong ReverseBits(ulong v)
    {
        ulong r = 0;
        for (int i = 0; i < 64; i++) { r = (r << 1) | (v & 1); v >>= 1; }
        return r;
    }

    /// <summary>
    /// Encodes this attr into <paramref name="dest"/> (<see cref="Size"/> bytes) in the given order.
    /// Bytes past <see cref="SizeKnown"/> come from <see cref="RawBytes"/> when it has them (same order assumed).
    /// </summary>
    public void Encode(Span<byte> dest, bool bigEndian)
    {
        dest.Clear();
        if (RawBytes is not null && RawBytes.Length > SizeKnown && dest.Length > SizeKnown)
            RawBytes.AsSpan(SizeKnown, Math.Min(RawBytes.Length, dest.Length) - SizeKnown).CopyTo(dest[SizeKnown..]);
        Span<byte> b = stackalloc byte[SizeKnown];
        var w = new ByteWriter(b, bigEndian);
        w.U32(0, Type); w.U32(4, Size); w.U64(8, Config); w.U64(16, SamplePeriod);
        w.U64(24, (ulong)SampleType); w.U64(32, (ulong)ReadFormat);
        w.U64(40, bigEndian ? ReverseBits((ulong)Flags) : (ulong)Flags);
        w.U32(48, WakeupEvents); w.U32(52, BpType); w.U64(56, Config1); w.U64(64, Config2);
        w.U64(72, BranchSampleType); w.U64(80, SampleRegsUser); w.U32(88, SampleStackUser);
        w.U32(92, unchecked((uint)ClockId)); w.U64(96, SampleRegsIntr); w.U32(104, AuxWatermark);
        w.U16(108, SampleMaxStack); w.U32(112, AuxSampleSize); w.U32(116, AuxAction);
        w.U64(120, SigData); w.U64(128, Config3);
        b[..Math.Min(SizeKnown, dest.Length)].CopyTo(dest);
    }

    /// <summary>A copy (the raw bytes are shared: they are never changed).</summary>
    public PerfEventAttr Clone() => (PerfEventAttr)MemberwiseClone();

    /// <summary>
    /// The name perf gives an event from its type and config when no EVENT_DESC / EVENT_UPDATE
    /// named it (tools/perf/util/evsel.c <c>evsel__hw_names</c>, <c>evsel__sw_names</c>).
    /// Tracepoint names need the tracing data; they come out as <c>tracepoint:0xCONFIG</c>.
    /// </summary>
    public string DefaultName() => (PerfEventType)Type switch
    {
        PerfEventType.Hardware when Config < (ulong)HardwareNames.Length => HardwareNames[Config],
        PerfEventType.Software when Config < (ulong)SoftwareNames.Length => SoftwareNames[Config],
        PerfEventType.Tracepoint => $"tracepoint:0x{Config:x}",
        PerfEventType.Raw => $"r{Config:x}",
        _ => $"event:{Type}:0x{Config:x}",
    };

    private static readonly string[] HardwareNames =
    [
        "cycles", "instructions", "cache-references", "cache-misses", "branches", "branch-misses",
        "bus-cycles", "stalled-cycles-frontend", "stalled-cycles-backend", "ref-cycles",
    ];

    private static readonly string[] SoftwareNames =
    [
        "cpu-clock", "task-clock", "page-faults", "context-switches", "cpu-migrations", "minor-faults",
        "major-faults", "alignment-faults", "emulation-faults", "dummy", "bpf-output", "cgroup-switches",
    ];
}

/// <summary>Writes integers at fixed offsets in a chosen byte order (writer side of <see cref="IByteOrder"/>).</summary>
internal readonly ref struct ByteWriter(Span<byte> span, bool bigEndian)
{
    private readonly Span<byte> _span = span;

    public void U16(int at, ushort v)
    {
        if (bigEndian) BinaryPrimitives.WriteUInt16BigEndian(_span[at..], v);
        else BinaryPrimitives.WriteUInt16LittleEndian(_span[at..], v);
    }

    public void U32(int at, uint v)
    {
        if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(_span[at..], v);
        else BinaryPrimitives.WriteUInt32LittleEndian(_span[at..], v);
    }

    public void U64(int at, ulong v)
    {
        if (bigEndian) BinaryPrimitives.WriteUInt64BigEndian(_span[at..], v);
        else BinaryPrimitives.WriteUInt64LittleEndian(_span[at..], v);
    }
}
