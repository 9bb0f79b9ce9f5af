using System.Globalization;
using System.Text;
using CsvHelper;
using CsvHelper.Configuration;
using TraceUnwind.Model;
using TraceUnwind.Output.Tests.Support;
using TraceUnwind.Processes;

namespace TraceUnwind.Output.Tests;

public class CsvSampleWriterTests
{
    public static TheoryData<string> Captures() => new(FixtureSamples.AllNames());

    private static readonly string[] RequiredHeader =
        "sample,time,pid,tid,cpu,comm,event,frame,kind,address,path,offset,file_offset,symbol,reliable".Split(',');

    internal static (string[] Header, List<string[]> Rows) WriteAndRead(IEnumerable<OwnedSample> samples, Symbols.ISymbolizer? sym)
    {
        var ms = new MemoryStream();
        var w = new CsvSampleWriter(ms, sym);
        OwnedSample.SendAll(samples, w);
        ms.Position = 0;
        using var reader = new CsvReader(new StreamReader(ms, Encoding.UTF8), new CsvConfiguration(CultureInfo.InvariantCulture));
        Assert.True(reader.Read());
        reader.ReadHeader();
        var header = reader.HeaderRecord!;
        var rows = new List<string[]>();
        while (reader.Read()) rows.Add(Enumerable.Range(0, header.Length).Select(i => reader.GetField(i)!).ToArray());
        return (header, rows);
    }

    /// <summary>Every column of every row, read back with CsvHelper, against the samples and perf's own lines.</summary>
    [Theory]
    [MemberData(nameof(Captures))]
    public void EveryColumnMatchesTheSamples(string capture)
    {
        var c = FixtureSamples.Load(capture);
        var (header, rows) = WriteAndRead(c.Samples, c.Symbolizer);
        Assert.Equal(RequiredHeader, header.Take(RequiredHeader.Length));
        Assert.Equal(CsvSampleWriter.Columns, header);
        int col(string name) => Array.IndexOf(header, name);
        int r = 0;
        for (int i = 0; i < c.Samples.Count; i++)
        {
            var s = c.Samples[i];
            var perf = c.PerfSamples[i];
            int n = Math.Max(1, s.Frames.Length);
            for (int j = 0; j < n; j++, r++)
            {
                var row = rows[r];
                Assert.Equal(s.Index.ToString(CultureInfo.InvariantCulture), row[col("sample")]);
                // time: seconds with 9 decimals, equal to perf's microsecond time.
                Assert.Matches(@"^\d+\.\d{9}$", row[col("time")]);
                Assert.Equal(perf.TimeNs, PerfScriptText.ParseSeconds(row[col("time")]));
                Assert.Equal(s.Pid.ToString(CultureInfo.InvariantCulture), row[col("pid")]);
                Assert.Equal(perf.Tid.ToString(CultureInfo.InvariantCulture), row[col("tid")]);
                Assert.Equal(s.Cpu < 0 ? "" : s.Cpu.ToString(CultureInfo.InvariantCulture), row[col("cpu")]);
                Assert.Equal(perf.Comm, row[col("comm")]);
                Assert.Equal(perf.Event, row[col("event")]);
                Assert.Equal(s.Period.ToString(CultureInfo.InvariantCulture), row[col("period")]);
                if (s.Frames.Length == 0)
                {
                    Assert.Equal("", row[col("frame")]);
                    Assert.Equal("", row[col("kind")]);
                    continue;
                }
                var f = s.Frames[j];
                var pf = perf.Frames[j];
                Assert.Equal(j.ToString(CultureInfo.InvariantCulture), row[col("frame")]);
                Assert.Equal("true", row[col("reliable")]);
                string kind = row[col("kind")];
                if (pf.Symbol == "(cookie)")
                {
                    Assert.Equal("cookie", kind);
                    Assert.Equal("", row[col("address")]);
                    Assert.Equal($"0x{pf.Address:x}", row[col("cookie")]);
                    continue;
                }
                Assert.Equal(pf.Dso.StartsWith("[kernel.kallsyms]", StringComparison.Ordinal) ? "kernel" : "user", kind);
                Assert.Equal(pf.Symbol == "[unknown]" ? "" : pf.Symbol, row[col("symbol")]);
                Assert.Equal(pf.Dso, row[col("dso")]);
                if (f.Mapping is { IsFileBacked: true } m)
                {
                    Assert.Equal(m.Path, row[col("path")]);
                    Assert.Equal(pf.Dso, row[col("path")]);
                    ulong address = Convert.ToUInt64(row[col("address")], 16);
                    ulong offset = Convert.ToUInt64(row[col("offset")], 16);
                    ulong fileOffset = Convert.ToUInt64(row[col("file_offset")], 16);
                    Assert.Equal(address - m.Start, offset);
                    Assert.Equal(offset + m.PgOff, fileOffset);
                    // Ground truth: perf 6.1 printed the file-relative address, perf 7.2 the runtime ip.
                    Assert.Equal(pf.Address, c.FileRelative ? fileOffset : address);
                }
                else
                {
                    Assert.Equal(pf.Address, Convert.ToUInt64(row[col("address")], 16));
                    Assert.Equal("", row[col("path")]);
                    if (f.Mapping is null)
                    {
                        Assert.Equal("", row[col("offset")]);
                        Assert.Equal("", row[col("file_offset")]);
                    }
                }
            }
        }
        Assert.Equal(rows.Count, r);
    }

    /// <summary>Lost stacks, cookies, deferred records, unknown cpu/pid and quoting (synthetic cases).</summary>
    [Fact]
    public void EdgeRows()
    {
        var libc = new Mapping(0x7f0000000000, 0x7f0000168000, 0x28000, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        var vdso = new Mapping(0x7ffd00000000, 0x7ffd00002000, 0, "[vdso]");
        var samples = new[]
        {
            new OwnedSample { Index = 0, Time = 1_000_000_000, Pid = 1, Tid = 2, Cpu = 3, Period = 4, Comm = "a, \"b\"", Event = "cpu-clock",
                Frames = [new Frame(0xffffffff81000000, FrameKind.Kernel), new Frame(0xcf00000001, FrameKind.UserLost)] },
            new OwnedSample { Index = 1, Time = 5, Pid = -1, Tid = 0, Comm = "swapper", Event = "cycles" },
            new OwnedSample { Index = 2, Time = 6, Pid = 9, Tid = 9, Comm = "x", Kind = SampleKind.DeferredCallchain, Cookie = 0xd1,
                Frames = [new Frame(0x7f0000001234, FrameKind.User, libc, FrameFlags.Unreliable), new Frame(0x7ffd00000010, FrameKind.User, vdso)] },
        };
        var (h, rows) = WriteAndRead(samples, null);
        string[] Row(int i) => rows[i];
        int col(string name) => Array.IndexOf(h, name);
        Assert.Equal(5, rows.Count);
        Assert.Equal("a, \"b\"", Row(0)[col("comm")]);
        Assert.Equal("1.000000000", Row(0)[col("time")]);
        Assert.Equal(("user-lost", "", "0xcf00000001"), (Row(1)[col("kind")], Row(1)[col("address")], Row(1)[col("cookie")]));
        Assert.Equal(("", "", "0", "", "swapper"), (Row(2)[col("pid")], Row(2)[col("cpu")], Row(2)[col("tid")], Row(2)[col("frame")], Row(2)[col("comm")]));
        Assert.Equal(("DEFERRED CALLCHAIN", "0xd1", "false", "0x1234", "0x29234"),
            (Row(3)[col("event")], Row(3)[col("cookie")], Row(3)[col("reliable")], Row(3)[col("offset")], Row(3)[col("file_offset")]));
        Assert.Equal(("", "[vdso]", "0x10"), (Row(4)[col("path")], Row(4)[col("dso")], Row(4)[col("offset")]));
    }
}
