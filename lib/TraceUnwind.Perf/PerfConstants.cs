namespace TraceUnwind.Perf;

/// <summary>
/// <c>perf_event_header.type</c>. Kernel types (&lt; 64) come from the ring buffer and carry a
/// <c>sample_id</c> trailer when <c>attr.sample_id_all</c> is set; types &gt;= 64 are written by perf
/// itself and never do (include/uapi/linux/perf_event.h, tools/lib/perf/include/perf/event.h).
/// </summary>
public enum PerfRecordType : uint
{
    Mmap = 1,
    Lost = 2,
    Comm = 3,
    Exit = 4,
    Throttle = 5,
    Unthrottle = 6,
    Fork = 7,
    Read = 8,
    Sample = 9,
    Mmap2 = 10,
    Aux = 11,
    ItraceStart = 12,
    LostSamples = 13,
    Switch = 14,
    SwitchCpuWide = 15,
    Namespaces = 16,
    Ksymbol = 17,
    BpfEvent = 18,
    Cgroup = 19,
    TextPoke = 20,
    AuxOutputHwId = 21,
    /// <summary>PERF_RECORD_CALLCHAIN_DEFERRED (Linux 6.19, kernel commit c69993ecdd4d).</summary>
    CallchainDeferred = 22,

    /// <summary>The first perf-synthesized ("user") type (PERF_RECORD_USER_TYPE_START).</summary>
    HeaderAttr = 64,
    HeaderEventType = 65,
    HeaderTracingData = 66,
    HeaderBuildId = 67,
    FinishedRound = 68,
    IdIndex = 69,
    AuxtraceInfo = 70,
    Auxtrace = 71,
    AuxtraceError = 72,
    ThreadMap = 73,
    CpuMap = 74,
    StatConfig = 75,
    Stat = 76,
    StatRound = 77,
    EventUpdate = 78,
    TimeConv = 79,
    HeaderFeature = 80,
    Compressed = 81,
    FinishedInit = 82,
    Compressed2 = 83,
    BpfMetadata = 84,
    SchedstatCpu = 85,
    SchedstatDomain = 86,
}

/// <summary><c>perf_event_attr.sample_type</c> bits (enum perf_event_sample_format).</summary>
[Flags]
public enum PerfSampleType : ulong
{
    None = 0,
    Ip = 1UL << 0,
    Tid = 1UL << 1,
    Time = 1UL << 2,
    Addr = 1UL << 3,
    Read = 1UL << 4,
    Callchain = 1UL << 5,
    Id = 1UL << 6,
    Cpu = 1UL << 7,
    Period = 1UL << 8,
    StreamId = 1UL << 9,
    Raw = 1UL << 10,
    BranchStack = 1UL << 11,
    RegsUser = 1UL << 12,
    StackUser = 1UL << 13,
    Weight = 1UL << 14,
    DataSrc = 1UL << 15,
    Identifier = 1UL << 16,
    Transaction = 1UL << 17,
    RegsIntr = 1UL << 18,
    PhysAddr = 1UL << 19,
    Aux = 1UL << 20,
    Cgroup = 1UL << 21,
    DataPageSize = 1UL << 22,
    CodePageSize = 1UL << 23,
    WeightStruct = 1UL << 24,
}

/// <summary><c>perf_event_attr.read_format</c> bits.</summary>
[Flags]
public enum PerfReadFormat : ulong
{
    None = 0,
    TotalTimeEnabled = 1,
    TotalTimeRunning = 2,
    Id = 4,
    Group = 8,
    Lost = 16,
}

/// <summary>Bits of the flags word at byte 40 of <c>perf_event_attr</c> (the C bitfield starting at <c>disabled</c>).</summary>
[Flags]
public enum PerfAttrFlags : ulong
{
    None = 0,
    Disabled = 1UL << 0,
    Inherit = 1UL << 1,
    Pinned = 1UL << 2,
    Exclusive = 1UL << 3,
    ExcludeUser = 1UL << 4,
    ExcludeKernel = 1UL << 5,
    ExcludeHv = 1UL << 6,
    ExcludeIdle = 1UL << 7,
    Mmap = 1UL << 8,
    Comm = 1UL << 9,
    Freq = 1UL << 10,
    InheritStat = 1UL << 11,
    EnableOnExec = 1UL << 12,
    Task = 1UL << 13,
    Watermark = 1UL << 14,
    /// <summary>precise_ip is a 2-bit field at bits 15-16.</summary>
    PreciseIpMask = 3UL << 15,
    MmapData = 1UL << 17,
    SampleIdAll = 1UL << 18,
    ExcludeHost = 1UL << 19,
    ExcludeGuest = 1UL << 20,
    ExcludeCallchainKernel = 1UL << 21,
    ExcludeCallchainUser = 1UL << 22,
    Mmap2 = 1UL << 23,
    CommExec = 1UL << 24,
    UseClockId = 1UL << 25,
    ContextSwitch = 1UL << 26,
    WriteBackward = 1UL << 27,
    Namespaces = 1UL << 28,
    Ksymbol = 1UL << 29,
    BpfEvent = 1UL << 30,
    AuxOutput = 1UL << 31,
    Cgroup = 1UL << 32,
    TextPoke = 1UL << 33,
    BuildId = 1UL << 34,
    InheritThread = 1UL << 35,
    RemoveOnExec = 1UL << 36,
    SigTrap = 1UL << 37,
    /// <summary>Bit 38 (c69993ecdd4d): the user part of callchains may be deferred.</summary>
    DeferCallchain = 1UL << 38,
    /// <summary>Bit 39: this event receives PERF_RECORD_CALLCHAIN_DEFERRED records.</summary>
    DeferOutput = 1UL << 39,
}

/// <summary>Feature ids of the file-mode feature bitmap and of pipe-mode HEADER_FEATURE records (tools/perf/util/header.h).</summary>
public enum PerfFeature
{
    Reserved = 0,
    TracingData = 1,
    BuildId = 2,
    Hostname = 3,
    OsRelease = 4,
    Version = 5,
    Arch = 6,
    NrCpus = 7,
    CpuDesc = 8,
    CpuId = 9,
    TotalMem = 10,
    Cmdline = 11,
    EventDesc = 12,
    CpuTopology = 13,
    NumaTopology = 14,
    BranchStack = 15,
    PmuMappings = 16,
    GroupDesc = 17,
    Auxtrace = 18,
    Stat = 19,
    Cache = 20,
    SampleTime = 21,
    MemTopology = 22,
    ClockId = 23,
    DirFormat = 24,
    BpfProgInfo = 25,
    BpfBtf = 26,
    Compressed = 27,
    CpuPmuCaps = 28,
    ClockData = 29,
    HybridTopology = 30,
    PmuCaps = 31,
}

/// <summary><c>perf_event_header.misc</c> bits and the cpumode values in its low 3 bits.</summary>
public static class PerfRecordMisc
{
    public const ushort CpuModeMask = 7;
    public const ushort CpuModeUnknown = 0;
    public const ushort Kernel = 1;
    public const ushort User = 2;
    public const ushort Hypervisor = 3;
    public const ushort GuestKernel = 4;
    public const ushort GuestUser = 5;
    /// <summary>MMAP/MMAP2: a data (non-exec) mapping; COMM: an exec; FORK: exec; SWITCH: switch out.</summary>
    public const ushort MmapData = 1 << 13;
    public const ushort CommExec = 1 << 13;
    /// <summary>MMAP2: the 24-byte union holds a build id instead of maj/min/ino/ino_generation.</summary>
    public const ushort MmapBuildId = 1 << 14;
    /// <summary>Build-id records and the BUILD_ID feature: the size byte is valid.</summary>
    public const ushort BuildIdSize = 1 << 15;
}

/// <summary>Callchain context markers (<c>enum perf_callchain_context</c>): any entry &gt;= <see cref="Max"/> is a marker.</summary>
public static class PerfContext
{
    public const ulong Hv = unchecked((ulong)-32);
    public const ulong Kernel = unchecked((ulong)-128);
    public const ulong User = unchecked((ulong)-512);
    /// <summary>Followed by exactly one cookie word; always the last two entries of a callchain.</summary>
    public const ulong UserDeferred = unchecked((ulong)-640);
    public const ulong Guest = unchecked((ulong)-2048);
    public const ulong GuestKernel = unchecked((ulong)-2176);
    public const ulong GuestUser = unchecked((ulong)-2560);
    public const ulong Max = unchecked((ulong)-4095);
}

/// <summary><c>perf_event_attr.branch_sample_type</c> bits that change the sample layout.</summary>
public static class PerfBranchSampleType
{
    /// <summary>PERF_SAMPLE_BRANCH_HW_INDEX: a u64 hw_idx follows the branch count.</summary>
    public const ulong HwIndex = 1UL << 17;
    /// <summary>PERF_SAMPLE_BRANCH_COUNTERS: nr u64 counters follow the entries.</summary>
    public const ulong Counters = 1UL << 19;
}

/// <summary><c>perf_event_attr.type</c>.</summary>
public enum PerfEventType : uint
{
    Hardware = 0,
    Software = 1,
    Tracepoint = 2,
    HwCache = 3,
    Raw = 4,
    Breakpoint = 5,
}
