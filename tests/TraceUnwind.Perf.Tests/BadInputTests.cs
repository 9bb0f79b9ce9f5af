using System.Buffers.Binary;
using System.Diagnostics;
using TraceUnwind.Diagnostics;
using TraceUnwind.Testing;
using Xunit.Abstractions;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// Damaged input: a damaged container throws <see cref="TraceFormatException"/> with the file and
/// byte offset and a precise message; damage inside a record whose boundary holds is counted and the
/// record skipped; a lost record boundary is counted and reading stops after delivering what came
/// before. The fuzz-style test feeds many damaged copies of real captures and accepts only our own
/// exception type, in bounded time and with bounded allocation.
/// </summary>
public sealed class BadInputTests(ITestOutputHelper output)
{
    private static byte[] Fixture(string rel) => File.ReadAllBytes(Fixtures.Path(rel.Split('/')));

    private static TraceFormatException Throws(byte[] data, string name = "bad.data")
    {
        var e = Assert.Throws<TraceFormatException>(() => Run.Samples(new MemoryStream(data), name));
        Assert.Equal(name, e.Position.Source);
        return e;
    }

    [Fact]
    public void EmptyInput() =>
        Assert.Equal("not a perf.data file: the input is empty", Throws([]).Detail);

    [Fact]
    public void NotPerfData()
    {
        var e = Throws([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0]);
        Assert.Equal("not a perf.data file: starts with 7f 45 4c 46 02 01 01 00 (\".ELF....\"), not PERFILE2", e.Detail);
        Assert.Equal(0, e.Position.ByteOffset);
        Assert.StartsWith("bad.data: byte offset 0x0 (0): not a perf.data file", e.Message);
    }

    [Fact]
    public void OldPerfFileMagic()
    {
        var b = new byte[104];
        "PERFFILE"u8.CopyTo(b);
        Assert.Contains("version 1", Throws(b).Detail);
    }

    [Fact]
    public void HeaderSizeLies()
    {
        var b = Fixture("perf/bash_loop/fp.data");
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(8), 50);
        var e = Throws(b);
        Assert.Equal("perf.data header size 50: neither 104 (file mode) nor 16 (pipe mode)", e.Detail);
        Assert.Equal(8, e.Position.ByteOffset);
    }

    [Fact]
    public void TruncatedFile_DataSectionRunsPastEnd()
    {
        // A copy cut in the middle of its data: the records that are there are read (as far as the
        // last whole record), the cut is counted with the header field's offset, features are forgotten.
        var full = Fixture("perf/bash_loop/fp.data");
        long dataOff = BinaryPrimitives.ReadInt64LittleEndian(full.AsSpan(40)), dataSize = BinaryPrimitives.ReadInt64LittleEndian(full.AsSpan(48));
        var cut = full[..(int)(dataOff + dataSize / 2)];
        var (all, _, _) = Run.Samples(new MemoryStream(full), "full.data");
        var (ours, tally, _) = Run.Samples(new MemoryStream(cut), "cut.data");
        Assert.Equal(1, tally.CountOf("perf.data.truncated-file"));
        Assert.Contains($"cut.data: byte offset 0x30 (48): data section 0x{dataOff:x}+0x{dataSize:x} runs past the end of the file (size 0x{cut.Length:x})",
            tally.ExamplesOf("perf.data.truncated-file")[0]);
        Assert.InRange(ours.Count, 1, all.Count - 1);
        // Every sample read is a sample of the whole file (time order may interleave the two halves).
        var whole = all.Select(x => x.Time).ToHashSet();
        Assert.All(ours, x => Assert.Contains(x.Time, whole));
    }

    [Fact]
    public void DataSizeZero_FromAKilledPerfRecord_ReadsToTheEnd()
    {
        var full = Fixture("perf/bash_loop/fp.data");
        long dataOff = BinaryPrimitives.ReadInt64LittleEndian(full.AsSpan(40)), dataSize = BinaryPrimitives.ReadInt64LittleEndian(full.AsSpan(48));
        var killed = full[..(int)(dataOff + dataSize)];
        BinaryPrimitives.WriteInt64LittleEndian(killed.AsSpan(48), 0);
        var (ours, tally, _) = Run.Samples(new MemoryStream(killed), "killed.data");
        Assert.Equal(1, tally.CountOf("perf.data.size-zero"));
        Assert.Equal(0, tally.ErrorCount);
        Assert.Equal(162, ours.Count);
        // The same through a non-seekable stream.
        var (piped, t2, _) = Run.Samples(new ChunkedStream(killed, () => 4096), "killed.data");
        Assert.Equal((0L, 162), (t2.ErrorCount, piped.Count));
    }

    [Fact]
    public void AttrSizeOdd()
    {
        var b = Fixture("perf/bash_loop/fp.data");
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(16), 3);
        Assert.Contains("attr_size 3 in the header", Throws(b).Detail);

        b = Fixture("perf/bash_loop/fp.data");
        long attrsOff = BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(24));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)attrsOff + 4), 4000); // attr.size larger than its entry
        var e = Throws(b);
        Assert.Contains("attr 0 says its size is 4000", e.Detail);
        Assert.Equal(attrsOff + 4, e.Position.ByteOffset);
    }

    [Fact]
    public void OlderAttrSizeReadsWithZeroTail()
    {
        // perf 6.1 wrote attr.size 128 (VER7); say it is 112 (VER6): sig_data and config3 then read as 0, samples still come.
        var b = Fixture("perf/python_script/fp.data");
        long attrsOff = BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(24));
        Assert.Equal(128u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((int)attrsOff + 4)));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)attrsOff + 4), 112);
        var (ours, tally, session) = Run.Samples(new MemoryStream(b), "old-attr.data");
        Assert.Equal(0, tally.ErrorCount);
        Assert.Equal(257, ours.Count);
        Assert.Equal(112u, session.Events[0].Attr.Size);
    }

    /// <summary>(offset, type, size) of every record of an uncompressed file or pipe capture.</summary>
    internal static List<(int Offset, uint Type, int Size)> Records(byte[] b)
    {
        bool pipe = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(8)) == 16;
        long off = pipe ? 16 : BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(40));
        long end = pipe ? b.Length : off + BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(48));
        var list = new List<(int, uint, int)>();
        while (off + 8 <= end)
        {
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((int)off));
            int size = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan((int)off + 6));
            list.Add(((int)off, type, size));
            off += size;
            if (type == 66) off += BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((int)off - size + 8));
        }
        return list;
    }

    [Fact]
    public void CallchainNrLargerThanItsRecord_IsCountedAndSkipped()
    {
        var b = Fixture("perf/bash_loop/fp.data");
        // sample_type IP|TID|TIME|CALLCHAIN|PERIOD (0x127): nr sits after ip, pid/tid, time, period.
        var samples = Records(b).Where(r => r.Type == 9).ToList();
        var victim = samples[10];
        Assert.Equal(PerfContext.Kernel, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(victim.Offset + 8 + 5 * 8)));
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(victim.Offset + 8 + 4 * 8), 0x7fff_ffff_ffff);
        var (ours, tally, _) = Run.Samples(new MemoryStream(b), "nr.data");
        Assert.Equal(samples.Count - 1, ours.Count);
        Assert.Equal(1, tally.CountOf("perf.sample.damaged"));
        string example = Assert.Single(tally.ExamplesOf("perf.sample.damaged"));
        Assert.Contains($"nr.data: byte offset 0x{victim.Offset:x}", example);
        Assert.Contains("callchain nr count 140737488355327 needs", example);
    }

    [Fact]
    public void UnknownRecordType_IsSkippedBySizeAndCounted()
    {
        var b = Fixture("perf-local/pipe.data");
        var recs = Records(b);
        var (before, _, _) = Run.Samples(new MemoryStream(b), "pipe.data");
        // Turn the FINISHED_INIT record and one more into types this reader does not know (kernel range and user range).
        var finit = recs.First(r => r.Type == 82);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(finit.Offset), 99);
        var thread = recs.First(r => r.Type == 73);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(thread.Offset), 40);
        var (after, tally, _) = Run.Samples(new MemoryStream(b), "pipe.data");
        Assert.Equal(2, tally.CountOf("perf.record.unknown-type"));
        Assert.Equal(0, tally.ErrorCount);
        Assert.Equal(before.Count, after.Count);
    }

    [Fact]
    public void RecordSizeBelowHeader_StopsAfterDeliveringWhatCameBefore()
    {
        var b = Fixture("perf/python_script/fp.data");
        var recs = Records(b);
        int idx = recs.FindIndex(r => r.Type == 9) + 100;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(recs[idx].Offset + 6), 4);
        int samplesBefore = recs.Take(idx).Count(r => r.Type == 9);
        var (ours, tally, _) = Run.Samples(new MemoryStream(b), "size.data");
        Assert.Equal(1, tally.CountOf("perf.record.bad-size"));
        Assert.Contains($"record of type 9 at 0x{recs[idx].Offset:x} has size 4 (< 8)", tally.ExamplesOf("perf.record.bad-size")[0]);
        Assert.Equal(samplesBefore, ours.Count);
    }

    [Fact]
    public void PipeCutShort_IsCountedAsTruncated()
    {
        var b = Fixture("perf-local/pipe.data");
        var recs = Records(b);
        var last = recs.Last(r => r.Type == 9);
        var (ours, tally, _) = Run.Samples(new MemoryStream(b[..(last.Offset + 20)]), "cut-pipe");
        Assert.Equal(1, tally.CountOf("perf.data.truncated"));
        Assert.Contains("a record is cut short (20 bytes of it present)", tally.ExamplesOf("perf.data.truncated")[0]);
        Assert.Equal(recs.Count(r => r.Type == 9) - 1, ours.Count);
    }

    // ------------------------------------------------------------------ fuzz

    public static TheoryData<string> FuzzInputs() => new()
    {
        "perf/bash_loop/fp.data", "perf/bash_loop/tp.data", "perf/python_script/dwarf.data",
        "perf-local/pipe.data", "perf-local/zstd.data", "perf-defer/recur-defer/perf.data",
    };

    /// <summary>
    /// MetadataReaderFuzzer's contract: only <see cref="TraceFormatException"/> for malformed input.
    /// Each damaged copy runs on its own thread under a generous timeout; what a run allocates is
    /// measured on that thread and must stay within a fixed bound (no allocation sized by a damaged
    /// length field).
    /// </summary>
    [Theory]
    [MemberData(nameof(FuzzInputs))]
    public void DamagedCopies_OnlyOurErrors_BoundedTimeAndMemory(string capture)
    {
        byte[] original = Fixture(capture);
        bool pipe = BinaryPrimitives.ReadUInt64LittleEndian(original.AsSpan(8)) == 16;
        long dataOff = pipe ? 16 : BinaryPrimitives.ReadInt64LittleEndian(original.AsSpan(40));
        var recs = Records(original);
        var rng = new Random(capture.GetHashCode(StringComparison.Ordinal) & 0x7fffffff);
        var cases = new List<(string What, byte[] Data, bool MayThrow)>();

        // Truncation at many points (header, attrs, every few records, inside records).
        for (int i = 0; i < 60; i++)
        {
            int cut = i < 20 ? i * 7 : rng.Next(1, original.Length);
            cases.Add(($"cut at {cut}", original[..cut], true));
        }
        // Random byte flips in the header/attrs region and in the records.
        for (int i = 0; i < 120; i++)
        {
            var d = (byte[])original.Clone();
            bool header = i % 3 == 0;
            int lo = header ? 0 : (int)dataOff, hi = header ? (int)dataOff : original.Length;
            int flips = rng.Next(1, 9);
            for (int k = 0; k < flips; k++) d[rng.Next(lo, hi)] ^= (byte)rng.Next(1, 256);
            cases.Add(($"{flips} flips in {(header ? "header" : "records")}", d, header || !pipe && IsFeatureArea(original, d)));
        }
        // Record sizes that lie; counts that lie; unknown types.
        for (int i = 0; i < 60; i++)
        {
            var d = (byte[])original.Clone();
            var r = recs[rng.Next(recs.Count)];
            switch (i % 4)
            {
                case 0: BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(r.Offset + 6), (ushort)rng.Next(0, 65536)); break;
                case 1: if (r.Size >= 24) BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(r.Offset + 8 + 8 * rng.Next(0, (r.Size - 16) / 8)), ulong.MaxValue - (ulong)rng.Next(0, 5000)); break;
                case 2: BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(r.Offset), (uint)rng.Next(0, 200)); break;
                case 3: if (r.Size >= 16) BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(r.Offset + 8 + 8 * rng.Next(0, (r.Size - 8) / 8)), (ulong)rng.Next(1 << 20) << 12); break;
            }
            cases.Add(($"lying field in record at 0x{r.Offset:x} (type {r.Type})", d, false));
        }
        if (!pipe)
        {
            // Attr sizes from older/newer/broken perf.
            long attrsOff = BinaryPrimitives.ReadInt64LittleEndian(original.AsSpan(24));
            foreach (uint size in new uint[] { 0, 8, 63, 64, 72, 120, 136, 143, 4096, uint.MaxValue })
            {
                var d = (byte[])original.Clone();
                BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan((int)attrsOff + 4), size);
                cases.Add(($"attr.size {size}", d, true));
            }
            foreach (ulong attrSize in new ulong[] { 0, 72, 79, 152, 4200, ulong.MaxValue })
            {
                var d = (byte[])original.Clone();
                BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(16), attrSize);
                cases.Add(($"attr_size {attrSize}", d, true));
            }
        }

        long worstAlloc = 0, thrown = 0, counted = 0;
        var worstTime = TimeSpan.Zero;
        foreach (var (what, data, mayThrow) in cases)
        {
            long allocated = 0;
            Exception? error = null;
            ErrorTally? tally = null;
            var sw = Stopwatch.StartNew();
            var thread = new Thread(() =>
            {
                long a0 = GC.GetAllocatedBytesForCurrentThread();
                try { tally = Run.Samples(new MemoryStream(data), "fuzz.data").Tally; }
                catch (Exception e) { error = e; }
                allocated = GC.GetAllocatedBytesForCurrentThread() - a0;
            }) { IsBackground = true };
            thread.Start();
            Assert.True(thread.Join(TimeSpan.FromSeconds(30)), $"{capture}, {what}: did not finish in 30 s");
            sw.Stop();
            if (error is not null and not TraceFormatException)
                Assert.Fail($"{capture}, {what}: {error.GetType().Name}: {error}");
            if (error is TraceFormatException tfe)
            {
                thrown++;
                Assert.True(mayThrow, $"{capture}, {what}: damage inside records must be counted, not thrown: {tfe.Message}");
                Assert.Equal("fuzz.data", tfe.Position.Source);
            }
            else if (tally!.ErrorCount + tally.NoticeCount > 0) counted++;
            worstAlloc = Math.Max(worstAlloc, allocated);
            if (sw.Elapsed > worstTime) worstTime = sw.Elapsed;
            // Fixed per-run buffers (1 MiB pipe segment, 1 MiB order chunk, scratch) plus copies of
            // small inputs; an allocation sized by a damaged length would blow far past this.
            Assert.True(allocated < 64L << 20, $"{capture}, {what}: allocated {allocated} bytes");
        }
        output.WriteLine($"{capture}: {cases.Count} damaged copies, {thrown} threw TraceFormatException, {counted} counted damage; worst {worstTime.TotalMilliseconds:F0} ms, {worstAlloc / 1024} KiB allocated");
        Assert.True(thrown > 0 && counted > 0);
    }

    /// <summary>True when a flip landed in the feature sections after the data (file mode): those may throw.</summary>
    private static bool IsFeatureArea(byte[] original, byte[] damaged)
    {
        long end = BinaryPrimitives.ReadInt64LittleEndian(original.AsSpan(40)) + BinaryPrimitives.ReadInt64LittleEndian(original.AsSpan(48));
        for (long i = end; i < original.Length; i++) if (original[i] != damaged[i]) return true;
        return false;
    }
}
