using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using TraceUnwind.Processes;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// A minimal, test-only walk over a file-mode perf.data (little endian, one event attr): the
/// MMAP/MMAP2 and COMM-exec records (to rebuild each process's mappings) and the SAMPLE records'
/// TID, TIME, REGS_USER and STACK_USER fields, replayed in time order. It exists because the perf
/// front end (lib/TraceUnwind.Perf) is written in parallel; the end-to-end test through it is the
/// integrator's. Layout: tools/perf/util/header.h (<c>perf_file_header</c>) and
/// include/uapi/linux/perf_event.h (<c>perf_event_attr</c>, record bodies, sample field order).
/// </summary>
internal static class PerfDataMini
{
    public sealed record Sample(int Pid, int Tid, ulong Time, ulong Abi, ulong RegsMask, ulong[] Regs, byte[] Stack, AddressSpace Maps);

    private const ulong SampleIp = 1 << 0, SampleTid = 1 << 1, SampleTime = 1 << 2, SampleAddr = 1 << 3, SampleRead = 1 << 4,
        SampleCallchain = 1 << 5, SampleId = 1 << 6, SampleCpu = 1 << 7, SamplePeriod = 1 << 8, SampleStreamId = 1 << 9,
        SampleRaw = 1 << 10, SampleBranchStack = 1 << 11, SampleRegsUser = 1 << 12, SampleStackUser = 1 << 13,
        SampleIdentifier = 1 << 16;

    public static List<Sample> Read(byte[] file)
    {
        var d = file.AsSpan();
        if (!d[..8].SequenceEqual("PERFILE2"u8)) throw new InvalidDataException("not a little-endian file-mode perf.data");
        ulong attrSize = U64(d, 16);
        ulong attrsOff = U64(d, 24), attrsSize = U64(d, 32);
        ulong dataOff = U64(d, 40), dataSize = U64(d, 48);
        if (attrsSize != attrSize) throw new InvalidDataException("test walker handles exactly one event attr");
        // perf_event_attr: sample_type @24, sample_regs_user @80, sample_stack_user @88
        int a = (int)attrsOff;
        ulong sampleType = U64(d, a + 24);
        ulong regsMask = U64(d, a + 80);
        ulong flags = U64(d, a + 40);
        bool sampleIdAll = (flags & (1UL << 18)) != 0;
        if ((sampleType & (SampleRead | SampleRaw | SampleBranchStack | SampleIdentifier)) != 0)
            throw new InvalidDataException("sample_type has fields this test walker does not skip");

        // Pass 1: events with their times.
        var events = new List<(ulong Time, int Order, int Offset)>();
        int pos = (int)dataOff, end = (int)(dataOff + dataSize), order = 0;
        while (pos + 8 <= end)
        {
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(d[pos..]);
            int size = BinaryPrimitives.ReadUInt16LittleEndian(d[(pos + 6)..]);
            if (size < 8 || pos + size > end) throw new InvalidDataException($"bad record size {size} at {pos}");
            ulong time = 0;
            if (type == 9) time = SampleTimeOf(d.Slice(pos, size), sampleType);
            else if (type is 1 or 3 or 10 && sampleIdAll && (sampleType & SampleTime) != 0)
            {
                // sample_id trailer: {pid, tid} if TID, time if TIME, id if ID, stream_id, {cpu, res}, id if IDENTIFIER
                int tail = 0;
                if ((sampleType & SampleCpu) != 0) tail += 8;
                if ((sampleType & SampleStreamId) != 0) tail += 8;
                if ((sampleType & SampleId) != 0) tail += 8;
                time = U64(d, pos + size - tail - 8);
            }
            if (type is 1 or 3 or 9 or 10) events.Add((time, order++, pos));
            pos += size;
        }
        events.Sort((x, y) => x.Time != y.Time ? x.Time.CompareTo(y.Time) : x.Order.CompareTo(y.Order));

        // Pass 2: replay.
        var spaces = new Dictionary<int, AddressSpace>();
        AddressSpace Space(int pid) => spaces.TryGetValue(pid, out var s) ? s : spaces[pid] = new AddressSpace();
        var samples = new List<Sample>();
        foreach (var (time, _, at) in events)
        {
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(d[at..]);
            ushort misc = BinaryPrimitives.ReadUInt16LittleEndian(d[(at + 4)..]);
            int size = BinaryPrimitives.ReadUInt16LittleEndian(d[(at + 6)..]);
            var r = d.Slice(at + 8, size - 8);
            int pid = BinaryPrimitives.ReadInt32LittleEndian(r);
            switch (type)
            {
                case 3 when (misc & 0x2000) != 0: // PERF_RECORD_COMM with PERF_RECORD_MISC_COMM_EXEC: new image
                    Space(pid).Clear();
                    break;
                case 1: // PERF_RECORD_MMAP: pid tid addr len pgoff filename
                {
                    ulong addr = U64(r, 8), len = U64(r, 16), pgoff = U64(r, 24);
                    Space(pid).Insert(new Mapping(addr, addr + len, pgoff, CString(r[32..]), Mapping.ProtRead | Mapping.ProtExec));
                    break;
                }
                case 10: // PERF_RECORD_MMAP2: pid tid addr len pgoff {maj min ino ino_gen | build id} prot flags filename
                {
                    ulong addr = U64(r, 8), len = U64(r, 16), pgoff = U64(r, 24);
                    uint prot = BinaryPrimitives.ReadUInt32LittleEndian(r[56..]);
                    if (pid == -1) break;
                    Space(pid).Insert(new Mapping(addr, addr + len, pgoff, CString(r[64..]), prot));
                    break;
                }
                case 9:
                    samples.Add(ParseSample(r, sampleType, regsMask, Space));
                    break;
            }
        }
        return samples;
    }

    private static ulong SampleTimeOf(ReadOnlySpan<byte> rec, ulong sampleType)
    {
        int p = 8;
        if ((sampleType & SampleIp) != 0) p += 8;
        if ((sampleType & SampleTid) != 0) p += 8;
        return (sampleType & SampleTime) != 0 ? U64(rec, p) : 0;
    }

    private static Sample ParseSample(ReadOnlySpan<byte> r, ulong sampleType, ulong regsMask, Func<int, AddressSpace> space)
    {
        int p = 0;
        if ((sampleType & SampleIp) != 0) p += 8;
        int pid = 0, tid = 0;
        if ((sampleType & SampleTid) != 0)
        {
            pid = BinaryPrimitives.ReadInt32LittleEndian(r[p..]);
            tid = BinaryPrimitives.ReadInt32LittleEndian(r[(p + 4)..]);
            p += 8;
        }
        ulong time = 0;
        if ((sampleType & SampleTime) != 0) { time = U64(r, p); p += 8; }
        if ((sampleType & SampleAddr) != 0) p += 8;
        if ((sampleType & SampleId) != 0) p += 8;
        if ((sampleType & SampleStreamId) != 0) p += 8;
        if ((sampleType & SampleCpu) != 0) p += 8;
        if ((sampleType & SamplePeriod) != 0) p += 8;
        if ((sampleType & SampleCallchain) != 0) p += 8 + 8 * (int)U64(r, p);
        ulong abi = 0;
        ulong[] regs = [];
        if ((sampleType & SampleRegsUser) != 0)
        {
            abi = U64(r, p); p += 8;
            if (abi != 0)
            {
                regs = new ulong[BitOperations.PopCount(regsMask)];
                for (int i = 0; i < regs.Length; i++, p += 8) regs[i] = U64(r, p);
            }
        }
        byte[] stack = [];
        if ((sampleType & SampleStackUser) != 0)
        {
            int size = (int)U64(r, p); p += 8;
            if (size != 0)
            {
                var bytes = r.Slice(p, size); p += size;
                ulong dyn = U64(r, p); p += 8;
                stack = bytes[..(int)Math.Min(dyn, (ulong)size)].ToArray();
            }
        }
        // The sample sees the mappings as they are now: a snapshot (mappings are immutable and shared).
        return new Sample(pid, tid, time, abi, regsMask, regs, stack, space(pid).Clone());
    }

    private static ulong U64(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt64LittleEndian(d[at..]);

    private static string CString(ReadOnlySpan<byte> s)
    {
        int nul = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? s : s[..nul]);
    }
}
