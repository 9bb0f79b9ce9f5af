using System.Buffers.Binary;

namespace TraceUnwind.Perf;

/// <summary>
/// The <c>sample_id</c> trailer of a non-SAMPLE kernel record (present when the event has
/// <c>sample_id_all</c>), or the same fields of a SAMPLE. Unknown values are -1 / 0 with the
/// matching <c>Has…</c> false.
/// </summary>
public struct PerfSampleId
{
    public int Pid;
    public int Tid;
    public ulong Time;
    public bool HasTime;
    public ulong Id;
    public ulong StreamId;
    public int Cpu;
    public ulong Identifier;

    public static PerfSampleId None => new() { Pid = -1, Tid = -1, Cpu = -1 };
}

/// <summary>
/// Any record as the reader delivers it: header fields, the raw bytes (in the input's byte
/// order), its position, the event it belongs to and its sample_id. A view: the bytes are valid
/// only during the handler call.
/// </summary>
public readonly ref struct PerfRecord
{
    internal PerfRecord(PerfRecordType type, ushort misc, ReadOnlySpan<byte> bytes, long fileOffset,
        PerfEvent? ev, PerfSampleId sampleId, int trailerSize, bool bigEndian)
    {
        Type = type;
        Misc = misc;
        Bytes = bytes;
        FileOffset = fileOffset;
        Event = ev;
        SampleId = sampleId;
        TrailerSize = trailerSize;
        IsBigEndian = bigEndian;
    }

    public PerfRecordType Type { get; }
    public ushort Misc { get; }
    /// <summary>The whole record, header included, in the input's byte order.</summary>
    public ReadOnlySpan<byte> Bytes { get; }
    /// <summary>
    /// Byte offset of the record in the input. Records that came out of a COMPRESSED record carry
    /// the offset of that COMPRESSED record. In pipe mode it counts from byte 0 of the stream.
    /// </summary>
    public long FileOffset { get; }
    /// <summary>The event whose id the record carries (the first event when it carries none), or null.</summary>
    public PerfEvent? Event { get; }
    public PerfSampleId SampleId { get; }
    /// <summary>Bytes of sample_id trailer at the end of <see cref="Bytes"/>.</summary>
    public int TrailerSize { get; }
    public bool IsBigEndian { get; }

    public int Size => Bytes.Length;
    public ushort CpuMode => (ushort)(Misc & PerfRecordMisc.CpuModeMask);
    /// <summary>The record body: after the 8-byte header, before the trailer.</summary>
    public ReadOnlySpan<byte> Body => Bytes[8..(Bytes.Length - TrailerSize)];

    /// <summary>Reads a u64 at <paramref name="offset"/> from the record start, in the input's order.</summary>
    public ulong U64(int offset) => IsBigEndian ? BinaryPrimitives.ReadUInt64BigEndian(Bytes[offset..]) : BinaryPrimitives.ReadUInt64LittleEndian(Bytes[offset..]);
    public uint U32(int offset) => IsBigEndian ? BinaryPrimitives.ReadUInt32BigEndian(Bytes[offset..]) : BinaryPrimitives.ReadUInt32LittleEndian(Bytes[offset..]);
    public ushort U16(int offset) => IsBigEndian ? BinaryPrimitives.ReadUInt16BigEndian(Bytes[offset..]) : BinaryPrimitives.ReadUInt16LittleEndian(Bytes[offset..]);
}

/// <summary>
/// PERF_RECORD_SAMPLE, decoded in kernel order (<c>perf_output_sample</c>). Integers are in host
/// order; u64 arrays (<see cref="Callchain"/>, <see cref="Read"/>, registers, branch entries) are
/// host-order views. Fields absent from the event's sample_type are 0 / empty; <see cref="Pid"/>,
/// <see cref="Tid"/> and <see cref="Cpu"/> are -1 then. Valid only during the handler call.
/// </summary>
public ref struct PerfSample
{
    public PerfRecord Record;
    public PerfEvent Event;
    public PerfSampleType SampleType;

    public ulong Identifier;
    public ulong Ip;
    public int Pid;
    public int Tid;
    public ulong Time;
    public ulong Addr;
    public ulong Id;
    public ulong StreamId;
    public int Cpu;
    /// <summary>The <c>res</c> word after cpu (kept for round trips).</summary>
    public uint CpuReserved;
    public ulong Period;
    /// <summary>PERF_SAMPLE_READ as u64 words, exactly as recorded (layout by read_format; see <see cref="PerfReadValues"/>).</summary>
    public ReadOnlySpan<ulong> Read;
    /// <summary>PERF_SAMPLE_CALLCHAIN entries (markers included), innermost first.</summary>
    public ReadOnlySpan<ulong> Callchain;
    /// <summary>PERF_SAMPLE_RAW data (the bytes after the u32 size, padding included).</summary>
    public ReadOnlySpan<byte> Raw;
    public ulong BranchNr;
    public ulong BranchHwIndex;
    /// <summary>{from, to, flags} per branch: 3 words each.</summary>
    public ReadOnlySpan<ulong> BranchEntries;
    public ReadOnlySpan<ulong> BranchCounters;
    /// <summary>PERF_SAMPLE_REGS_USER abi: 0 none (no registers follow), 1 32-bit, 2 64-bit.</summary>
    public ulong UserRegsAbi;
    public ReadOnlySpan<ulong> UserRegs;
    /// <summary>The <c>size</c> word of PERF_SAMPLE_STACK_USER (bytes copied).</summary>
    public ulong UserStackSize;
    /// <summary>All <see cref="UserStackSize"/> copied bytes (use <see cref="UserStackValid"/> for the valid part).</summary>
    public ReadOnlySpan<byte> UserStack;
    /// <summary><c>dyn_size</c>: how many of the copied bytes are valid.</summary>
    public ulong UserStackDynSize;
    public ulong Weight;
    public ulong DataSrc;
    public ulong Transaction;
    public ulong IntrRegsAbi;
    public ReadOnlySpan<ulong> IntrRegs;
    public ulong PhysAddr;
    public ulong Cgroup;
    public ulong DataPageSize;
    public ulong CodePageSize;
    public ReadOnlySpan<byte> Aux;

    /// <summary>
    /// Set by a stage before the sample builder (the deferred-callchain joiner) to say what became of
    /// a deferred user callchain; <see cref="PerfDeferredResolution.None"/> as read from the input.
    /// </summary>
    public PerfDeferredResolution DeferredResolution;

    public readonly ushort CpuMode => Record.CpuMode;

    /// <summary>The valid user stack bytes (cut to <c>dyn_size</c>).</summary>
    public readonly ReadOnlySpan<byte> UserStackValid =>
        UserStack[..(int)Math.Min((ulong)UserStack.Length, UserStackDynSize)];

    /// <summary>
    /// True when the callchain ends in PERF_CONTEXT_USER_DEFERRED + cookie (the last two entries) and no
    /// stage joined it yet.
    /// </summary>
    public readonly bool HasDeferredUserCallchain =>
        DeferredResolution != PerfDeferredResolution.Joined && Callchain.Length >= 2 && Callchain[^2] == PerfContext.UserDeferred;

    /// <summary>The deferred-callchain cookie (0 when <see cref="HasDeferredUserCallchain"/> is false).</summary>
    public readonly ulong DeferredCookie => HasDeferredUserCallchain ? Callchain[^1] : 0;
}

/// <summary>What a stage before the sample builder did with a sample's deferred user callchain.</summary>
public enum PerfDeferredResolution : byte
{
    /// <summary>Untouched: a chain ending in USER_DEFERRED + cookie shows the cookie (<c>FrameKind.DeferredCookie</c>).</summary>
    None,
    /// <summary>
    /// Joined (perf's <c>sample__merge_deferred_callchain</c> form): the chain is the original without its
    /// cookie, so PERF_CONTEXT_USER_DEFERRED is followed by the deferred record's user ips and acts like
    /// PERF_CONTEXT_USER.
    /// </summary>
    Joined,
    /// <summary>The deferred record never came: the cookie becomes one <c>FrameKind.UserLost</c> frame.</summary>
    Lost,
}

/// <summary>PERF_RECORD_MMAP (1) and PERF_RECORD_MMAP2 (10).</summary>
public ref struct PerfMmap
{
    public PerfRecord Record;
    public bool IsMmap2;
    public int Pid;
    public int Tid;
    public ulong Address;
    public ulong Length;
    public ulong PgOff;
    /// <summary>MMAP2 plain form: device and inode.</summary>
    public uint Major, Minor;
    public ulong Inode, InodeGeneration;
    /// <summary>MMAP2 build-id form (misc bit 14): the build id (up to 20 bytes), else empty.</summary>
    public ReadOnlySpan<byte> BuildId;
    /// <summary>MMAP2 prot (PROT_READ 1, PROT_WRITE 2, PROT_EXEC 4); for MMAP derived from misc (exec unless MMAP_DATA).</summary>
    public uint Prot;
    public uint Flags;
    /// <summary>The file name bytes up to the NUL.</summary>
    public ReadOnlySpan<byte> FileName;

    public readonly bool HasBuildId => (Record.Misc & PerfRecordMisc.MmapBuildId) != 0 && IsMmap2;
    public readonly bool IsData => (Record.Misc & PerfRecordMisc.MmapData) != 0;
}

/// <summary>PERF_RECORD_COMM (3).</summary>
public ref struct PerfComm
{
    public PerfRecord Record;
    public int Pid;
    public int Tid;
    /// <summary>The comm bytes up to the NUL.</summary>
    public ReadOnlySpan<byte> Comm;
    public readonly bool IsExec => (Record.Misc & PerfRecordMisc.CommExec) != 0;
}

/// <summary>PERF_RECORD_FORK (7) and PERF_RECORD_EXIT (4): <c>pid, ppid, tid, ptid, time</c>.</summary>
public ref struct PerfTaskEvent
{
    public PerfRecord Record;
    public int Pid;
    public int ParentPid;
    public int Tid;
    public int ParentTid;
    public ulong Time;
}

/// <summary>
/// PERF_RECORD_CALLCHAIN_DEFERRED (22): <c>cookie, nr, ips[nr]</c> (raw user addresses, no
/// context marker, innermost first), then the sample_id of the <c>defer_output</c> event.
/// </summary>
public ref struct PerfDeferredCallchain
{
    public PerfRecord Record;
    public ulong Cookie;
    public ReadOnlySpan<ulong> Ips;
}

/// <summary>Helpers to walk a PERF_SAMPLE_READ block.</summary>
public static class PerfReadValues
{
    /// <summary>Words per value entry: value, [id], [lost].</summary>
    public static int EntryWords(PerfReadFormat f) =>
        1 + ((f & PerfReadFormat.Id) != 0 ? 1 : 0) + ((f & PerfReadFormat.Lost) != 0 ? 1 : 0);

    /// <summary>
    /// Words of a READ block besides the value entries: GROUP has <c>nr, [enabled], [running]</c>
    /// before <c>nr</c> entries; without GROUP the one entry is <c>value, [enabled], [running], [id], [lost]</c>.
    /// </summary>
    public static int ExtraWords(PerfReadFormat f) =>
        ((f & PerfReadFormat.Group) != 0 ? 1 : 0) + ((f & PerfReadFormat.TotalTimeEnabled) != 0 ? 1 : 0)
        + ((f & PerfReadFormat.TotalTimeRunning) != 0 ? 1 : 0);
}
