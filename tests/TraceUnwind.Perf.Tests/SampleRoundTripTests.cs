namespace TraceUnwind.Perf.Tests;

/// <summary>
/// perf's tools/perf/tests/sample-parsing.c, for this reader and <see cref="PerfDataWriter"/>: a sample
/// is synthesized for every PERF_SAMPLE_* bit alone and for all of them together, each field holding a
/// distinct value (ip 101, pid 102, tid 103, ...), written into a perf.data file (both byte orders),
/// read back and compared field by field. A sample_type bit the reader learns must be added here:
/// <see cref="TheTestKnowsEveryBit"/> fails until it is.
/// </summary>
public sealed class SampleRoundTripTests
{
    /// <summary>IP (bit 0) .. WEIGHT_STRUCT (bit 24): the bits this test fills in.</summary>
    private const ulong TestedBits = (1UL << 25) - 1;

    [Fact]
    public void TheTestKnowsEveryBit()
    {
        Assert.Equal(TestedBits, SampleLayout.KnownSampleTypes);
        ulong all = Enum.GetValues<PerfSampleType>().Aggregate(0UL, (a, b) => a | (ulong)b);
        Assert.Equal(TestedBits, all);
    }

    /// <summary>A sample's fields copied out of the view.</summary>
    private sealed record Fields(ushort Misc, ulong Identifier, ulong Ip, int Pid, int Tid, ulong Time, ulong Addr, ulong Id, ulong StreamId,
        int Cpu, uint CpuRes, ulong Period, ulong[] Read, ulong[] Callchain, byte[] Raw, ulong BranchNr, ulong BranchHwIndex, ulong[] Branches,
        ulong[] BranchCounters, ulong UserAbi, ulong[] UserRegs, ulong UserStackSize, byte[] UserStack, ulong DynSize, ulong Weight, ulong DataSrc,
        ulong Transaction, ulong IntrAbi, ulong[] IntrRegs, ulong PhysAddr, ulong Cgroup, ulong DataPageSize, ulong CodePageSize, byte[] Aux)
    {
        public static Fields Of(in PerfSample s) => new(s.Record.Misc, s.Identifier, s.Ip, s.Pid, s.Tid, s.Time, s.Addr, s.Id, s.StreamId, s.Cpu, s.CpuReserved,
            s.Period, s.Read.ToArray(), s.Callchain.ToArray(), s.Raw.ToArray(), s.BranchNr, s.BranchHwIndex, s.BranchEntries.ToArray(),
            s.BranchCounters.ToArray(), s.UserRegsAbi, s.UserRegs.ToArray(), s.UserStackSize, s.UserStack.ToArray(), s.UserStackDynSize, s.Weight,
            s.DataSrc, s.Transaction, s.IntrRegsAbi, s.IntrRegs.ToArray(), s.PhysAddr, s.Cgroup, s.DataPageSize, s.CodePageSize, s.Aux.ToArray());

        public bool SameAs(Fields o) =>
            (Misc, Identifier, Ip, Pid, Tid, Time, Addr, Id, StreamId, Cpu, CpuRes, Period) ==
            (o.Misc, o.Identifier, o.Ip, o.Pid, o.Tid, o.Time, o.Addr, o.Id, o.StreamId, o.Cpu, o.CpuRes, o.Period)
            && Read.SequenceEqual(o.Read) && Callchain.SequenceEqual(o.Callchain) && Raw.SequenceEqual(o.Raw)
            && (BranchNr, BranchHwIndex) == (o.BranchNr, o.BranchHwIndex) && Branches.SequenceEqual(o.Branches)
            && BranchCounters.SequenceEqual(o.BranchCounters) && UserAbi == o.UserAbi && UserRegs.SequenceEqual(o.UserRegs)
            && (UserStackSize, DynSize) == (o.UserStackSize, o.DynSize) && UserStack.SequenceEqual(o.UserStack)
            && (Weight, DataSrc, Transaction, IntrAbi) == (o.Weight, o.DataSrc, o.Transaction, o.IntrAbi) && IntrRegs.SequenceEqual(o.IntrRegs)
            && (PhysAddr, Cgroup, DataPageSize, CodePageSize) == (o.PhysAddr, o.Cgroup, o.DataPageSize, o.CodePageSize) && Aux.SequenceEqual(o.Aux);
    }

    private const ulong UserRegsMask = 0b1011_0101, IntrRegsMask = 0b111;

    private const ulong AllReadFlags = (ulong)(PerfReadFormat.TotalTimeEnabled | PerfReadFormat.TotalTimeRunning | PerfReadFormat.Id | PerfReadFormat.Lost);

    public static TheoryData<ulong, ulong, bool> Cases()
    {
        var d = new TheoryData<ulong, ulong, bool>();
        foreach (bool be in new[] { false, true })
        {
            for (int bit = 0; bit < 25; bit++)
            {
                if (1UL << bit != (ulong)PerfSampleType.Read) { d.Add(1UL << bit, AllReadFlags, be); continue; }
                // READ with every read_format: each subset of ENABLED/RUNNING/ID/LOST, with and without GROUP.
                for (ulong subset = 0; subset < 16; subset++)
                {
                    // Bits 0-2 are ENABLED/RUNNING/ID; subset bit 3 stands for LOST (16), GROUP (8) is added below.
                    ulong rf = (subset & 7) | ((subset & 8) != 0 ? (ulong)PerfReadFormat.Lost : 0);
                    d.Add(1UL << bit, rf, be);
                    d.Add(1UL << bit, rf | (ulong)PerfReadFormat.Group, be);
                }
            }
            // All together; WEIGHT and WEIGHT_STRUCT share one slot, so the kernel takes only one.
            d.Add(TestedBits & ~(ulong)PerfSampleType.Weight, AllReadFlags, be);
            d.Add(TestedBits & ~(ulong)PerfSampleType.WeightStruct, AllReadFlags | (ulong)PerfReadFormat.Group, be);
        }
        return d;
    }

    /// <summary>The READ block for a read_format: distinct values, laid out as the kernel writes them.</summary>
    private static ulong[] ReadBlock(PerfReadFormat f)
    {
        var w = new List<ulong>();
        bool Has(PerfReadFormat x) => (f & x) != 0;
        if (Has(PerfReadFormat.Group))
        {
            w.Add(2);
            if (Has(PerfReadFormat.TotalTimeEnabled)) w.Add(202);
            if (Has(PerfReadFormat.TotalTimeRunning)) w.Add(203);
            foreach (ulong v in new ulong[] { 210, 220 })
            {
                w.Add(v + 1);
                if (Has(PerfReadFormat.Id)) w.Add(v + 2);
                if (Has(PerfReadFormat.Lost)) w.Add(v + 3);
            }
        }
        else
        {
            w.Add(201);
            if (Has(PerfReadFormat.TotalTimeEnabled)) w.Add(202);
            if (Has(PerfReadFormat.TotalTimeRunning)) w.Add(203);
            if (Has(PerfReadFormat.Id)) w.Add(204);
            if (Has(PerfReadFormat.Lost)) w.Add(205);
        }
        return w.ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryFieldComesBack(ulong sampleType, ulong readFormat, bool bigEndian)
    {
        var attr = new PerfEventAttr
        {
            Type = 1, Size = PerfEventAttr.SizeKnown, SampleType = (PerfSampleType)sampleType,
            ReadFormat = (PerfReadFormat)readFormat,
            Flags = PerfAttrFlags.SampleIdAll | PerfAttrFlags.Disabled | PerfAttrFlags.DeferCallchain,
            BranchSampleType = PerfBranchSampleType.HwIndex | PerfBranchSampleType.Counters,
            SampleRegsUser = UserRegsMask, SampleRegsIntr = IntrRegsMask, SampleStackUser = 32,
        };
        ulong[] read = ReadBlock((PerfReadFormat)readFormat);
        ulong[] callchain = [PerfContext.User, 301, 302, 303, 304];
        byte[] raw = Enumerable.Range(0x41, 12).Select(i => (byte)i).ToArray(); // 4 + 12 = 16: 8-aligned as the kernel pads it
        ulong[] branches = [501, 502, 503, 504, 505, 506];
        ulong[] counters = [601, 602];
        ulong[] uregs = [701, 702, 703, 704, 705];
        byte[] stack = Enumerable.Range(0x80, 32).Select(i => (byte)i).ToArray();
        ulong[] iregs = [801, 802, 803];
        byte[] aux = Enumerable.Range(0xa0, 16).Select(i => (byte)i).ToArray();

        var ms = new MemoryStream();
        var writer = new PerfDataWriter(ms, bigEndian);
        writer.AddEvent(attr, [106, 117], "round-trip");
        var s = new PerfSample
        {
            Identifier = 117, Ip = 101, Pid = 102, Tid = 103, Time = 104, Addr = 105, Id = 106, StreamId = 107, Cpu = 110, CpuReserved = 118,
            Period = 108, Read = read, Callchain = callchain, Raw = raw, BranchNr = 2, BranchHwIndex = 0x401, BranchEntries = branches,
            BranchCounters = counters, UserRegsAbi = 2, UserRegs = uregs, UserStackSize = (ulong)stack.Length, UserStack = stack, UserStackDynSize = 24,
            Weight = 109, DataSrc = 111, Transaction = 112, IntrRegsAbi = 2, IntrRegs = iregs, PhysAddr = 113, Cgroup = 114,
            DataPageSize = 115, CodePageSize = 116, Aux = aux,
        };
        writer.WriteSample(s, attr);
        writer.Complete();

        // What must come back: the fields of this sample_type; the others empty (pid/tid/cpu -1).
        var t = (PerfSampleType)sampleType;
        bool Has(PerfSampleType b) => (t & b) != 0;
        var expected = new Fields(0, Has(PerfSampleType.Identifier) ? 117UL : 0, Has(PerfSampleType.Ip) ? 101UL : 0,
            Has(PerfSampleType.Tid) ? 102 : -1, Has(PerfSampleType.Tid) ? 103 : -1, Has(PerfSampleType.Time) ? 104UL : 0,
            Has(PerfSampleType.Addr) ? 105UL : 0, Has(PerfSampleType.Id) ? 106UL : 0, Has(PerfSampleType.StreamId) ? 107UL : 0,
            Has(PerfSampleType.Cpu) ? 110 : -1, Has(PerfSampleType.Cpu) ? 118u : 0, Has(PerfSampleType.Period) ? 108UL : 0,
            Has(PerfSampleType.Read) ? read : [], Has(PerfSampleType.Callchain) ? callchain : [], Has(PerfSampleType.Raw) ? raw : [],
            Has(PerfSampleType.BranchStack) ? 2UL : 0, Has(PerfSampleType.BranchStack) ? 0x401UL : 0, Has(PerfSampleType.BranchStack) ? branches : [],
            Has(PerfSampleType.BranchStack) ? counters : [], Has(PerfSampleType.RegsUser) ? 2UL : 0, Has(PerfSampleType.RegsUser) ? uregs : [],
            Has(PerfSampleType.StackUser) ? 32UL : 0, Has(PerfSampleType.StackUser) ? stack : [], Has(PerfSampleType.StackUser) ? 24UL : 0,
            Has(PerfSampleType.Weight) || Has(PerfSampleType.WeightStruct) ? 109UL : 0, Has(PerfSampleType.DataSrc) ? 111UL : 0,
            Has(PerfSampleType.Transaction) ? 112UL : 0, Has(PerfSampleType.RegsIntr) ? 2UL : 0, Has(PerfSampleType.RegsIntr) ? iregs : [],
            Has(PerfSampleType.PhysAddr) ? 113UL : 0, Has(PerfSampleType.Cgroup) ? 114UL : 0, Has(PerfSampleType.DataPageSize) ? 115UL : 0,
            Has(PerfSampleType.CodePageSize) ? 116UL : 0, Has(PerfSampleType.Aux) ? aux : []);

        ms.Position = 0;
        var bytes = ms.ToArray();
        Assert.Equal(bigEndian ? "2ELIFREP"u8.ToArray() : "PERFILE2"u8.ToArray(), bytes[..8]);
        var probe = new Probe();
        var reader = new PerfRecordReader(new MemoryStream(bytes), "round-trip", new PerfReadOptions { Order = PerfRecordOrder.File });
        reader.Run(probe);
        Assert.Equal(0, reader.Tally.ErrorCount);
        Assert.Equal(bigEndian, reader.Session.IsBigEndian);
        var back = Assert.Single(probe.Samples);
        Assert.True(expected.SameAs(back), $"sample_type 0x{sampleType:x}:\n expected {expected}\n got      {back}");
        var ev = Assert.Single(reader.Session.Events);
        Assert.Equal("round-trip", ev.Name);
        Assert.Equal(attr.SampleType, ev.Attr.SampleType);
        Assert.Equal(attr.ReadFormat, ev.Attr.ReadFormat);
        Assert.Equal(attr.Flags, ev.Attr.Flags);
        Assert.Equal(attr.BranchSampleType, ev.Attr.BranchSampleType);
        Assert.Equal((UserRegsMask, IntrRegsMask, 32u), (ev.Attr.SampleRegsUser, ev.Attr.SampleRegsIntr, ev.Attr.SampleStackUser));
        Assert.Equal([106UL, 117UL], ev.Ids);

        // The same bytes through the public re-parser (what a joiner uses on a held copy).
        var parser = new PerfSampleParser(reader.Session);
        Assert.True(parser.TryParseSample(probe.Raw!, 0, out var again, out string? err), err);
        Assert.True(expected.SameAs(Fields.Of(again)));
    }

    private sealed class Probe : PerfRecordHandler
    {
        public readonly List<Fields> Samples = new();
        public byte[]? Raw;
        public override void OnSample(in PerfSample s)
        {
            Samples.Add(Fields.Of(s));
            Raw = s.Record.Bytes.ToArray();
        }
    }

    [Fact]
    public void DeferredRecordRoundTrips()
    {
        foreach (bool be in new[] { false, true })
        {
            var attr = new PerfEventAttr
            {
                Type = 1, SampleType = PerfSampleType.Ip | PerfSampleType.Tid | PerfSampleType.Time | PerfSampleType.Callchain,
                Flags = PerfAttrFlags.SampleIdAll | PerfAttrFlags.DeferCallchain | PerfAttrFlags.DeferOutput,
            };
            var ms = new MemoryStream();
            var w = new PerfDataWriter(ms, be);
            w.AddEvent(attr, [], "cpu-clock");
            var ev = new PerfEvent(0, attr, []);
            var d = new PerfDeferredCallchain
            {
                Record = new PerfRecord(PerfRecordType.CallchainDeferred, PerfRecordMisc.User, default, 0, ev,
                    new PerfSampleId { Pid = 360, Tid = 361, Time = 134861562529, HasTime = true }, 16, be),
                Cookie = 0x000000cf00000001, Ips = [0x7f50772f7d00, 0x7f50772f88c5],
            };
            w.WriteDeferredCallchain(d);
            w.Complete();
            var probe = new DeferredProbe();
            var reader = new PerfRecordReader(new MemoryStream(ms.ToArray()), "deferred");
            reader.Run(probe);
            Assert.Equal(0, reader.Tally.ErrorCount);
            Assert.Equal((0x000000cf00000001UL, 360, 361, 134861562529UL, PerfRecordMisc.User),
                (probe.Cookie, probe.Pid, probe.Tid, probe.Time, probe.Misc));
            Assert.Equal([0x7f50772f7d00UL, 0x7f50772f88c5], probe.Ips);
        }
    }

    private sealed class DeferredProbe : PerfRecordHandler
    {
        public ulong Cookie, Time;
        public int Pid, Tid;
        public ushort Misc;
        public ulong[] Ips = [];
        public override void OnDeferredCallchain(in PerfDeferredCallchain d)
        {
            (Cookie, Pid, Tid, Time, Misc, Ips) = (d.Cookie, d.Record.SampleId.Pid, d.Record.SampleId.Tid, d.Record.SampleId.Time, d.Record.Misc, d.Ips.ToArray());
        }
    }
}
