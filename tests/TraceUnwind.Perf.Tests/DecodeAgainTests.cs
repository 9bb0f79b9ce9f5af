using TraceUnwind.Testing;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// The joiner decodes its held copies again through a fixed-offset fast path (<c>RecordDecoder.TryDecodeSampleAgain</c>):
/// for every sample of the real captures (and of the synthetic <c>-a</c> layout with CPU and IDENTIFIER), and for a
/// layout the fast path does not take (RAW after the callchain), it must give what the full decode gives.
/// </summary>
public sealed class DecodeAgainTests
{
    private sealed class Compare(PerfSession session) : PerfRecordHandler
    {
        private readonly PerfSampleParser _parser = new(session);
        public int Samples, Fast;

        public override void OnSample(in PerfSample s)
        {
            var bytes = s.Record.Bytes.ToArray();
            Assert.True(_parser.TryDecodeAgain(bytes, s.Record.FileOffset, s.Event, out var again));
            Assert.Equal((s.Identifier, s.Ip, s.Pid, s.Tid, s.Time, s.Addr, s.Id, s.StreamId, s.Cpu, s.CpuReserved, s.Period),
                (again.Identifier, again.Ip, again.Pid, again.Tid, again.Time, again.Addr, again.Id, again.StreamId, again.Cpu, again.CpuReserved, again.Period));
            Assert.Equal((s.SampleType, s.Event, s.Record.Misc, s.Record.FileOffset, s.Record.Type), (again.SampleType, again.Event, again.Record.Misc, again.Record.FileOffset, again.Record.Type));
            Assert.True(s.Callchain.SequenceEqual(again.Callchain));
            Assert.True(s.Read.SequenceEqual(again.Read));
            Assert.True(s.Record.Bytes.SequenceEqual(again.Record.Bytes));
            Assert.Equal((s.Raw.Length, s.UserStack.Length, s.UserRegs.Length, s.BranchEntries.Length), (again.Raw.Length, again.UserStack.Length, again.UserRegs.Length, again.BranchEntries.Length));
            Samples++;
            if (s.Event.Layout.CallchainAt >= 0) Fast++;
        }
    }

    private static (int Samples, int Fast) Check(Stream data)
    {
        var reader = new PerfRecordReader(data, "data");
        var c = new Compare(reader.Session);
        reader.Run(c);
        return (c.Samples, c.Fast);
    }

    [Theory]
    [InlineData("perf-defer/recur-defer/perf.data", 864)]
    [InlineData("perf-defer/bash-defer/perf.data", 1071)]
    [InlineData("perf/bash_loop/fp.data", -1)]
    public void SameAsTheFullDecode(string capture, int samples)
    {
        using var fs = File.OpenRead(Fixtures.Path(capture.Split('/')));
        var (n, fast) = Check(fs);
        if (samples >= 0) Assert.Equal(samples, n);
        Assert.Equal(n, fast); // --call-graph fp: the fixed layout
    }

    [Fact]
    public void SystemWideLayoutWithCpuAndIdentifier()
    {
        const ulong T = DeferredSynth.T0;
        var data = new DeferredSynth(systemWide: true).Sample(360, T + 1, 0x1_0000_0001, cpu: 1).Sample(361, T + 2, 0x2_0000_0001, userMode: true).Build();
        Assert.Equal((2, 2), Check(new MemoryStream(data)));
    }

    [Fact]
    public void RawAfterTheCallchainTakesTheFullDecode()
    {
        // perf/bash_loop/tp.data: tracepoints with RAW after the callchain: not the fixed layout.
        using var fs = File.OpenRead(Fixtures.Path("perf", "bash_loop", "tp.data"));
        var (n, fast) = Check(fs);
        int perf = Fixtures.ReadText("perf", "bash_loop", "tp.script_F.txt").Split('\n').Count(l => l.Length > 0 && !char.IsWhiteSpace(l[0]));
        Assert.Equal(perf, n);
        Assert.Equal(0, fast);
    }
}
