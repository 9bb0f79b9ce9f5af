using System.Buffers.Binary;
using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Perf.Deferred;
using TraceUnwind.Perf.Inject;
using TraceUnwind.Testing;

namespace TraceUnwind.Perf.Tests;

/// <summary>
/// <see cref="PerfInjector"/>: the injected file read back by our own reader (always) and by the
/// machine's perf 6.1 (when present), against perf 7.2.13's merged view of the original.
/// </summary>
public sealed class PerfInjectorTests
{
    internal static (byte[] Output, PerfInjectResult Result, ErrorTally Tally) Inject(byte[] input, PerfInjectOptions? options = null)
    {
        var tally = new ErrorTally();
        var ms = new MemoryStream();
        var result = new PerfInjector(options, tally).Run(new MemoryStream(input, writable: false), "in", ms);
        return (ms.ToArray(), result, tally);
    }

    private static byte[] Capture(string capture) => File.ReadAllBytes(Fixtures.Path("perf-defer", capture, "perf.data"));

    /// <summary>Every record in file order (raw bytes), and the session.</summary>
    private sealed class RecordList : PerfRecordHandler
    {
        public readonly List<(PerfRecordType Type, byte[] Bytes)> Records = new();
        private void Add(in PerfRecord r) => Records.Add((r.Type, r.Bytes.ToArray()));
        public override void OnSample(in PerfSample s) => Add(s.Record);
        public override void OnMmap(in PerfMmap m) => Add(m.Record);
        public override void OnComm(in PerfComm c) => Add(c.Record);
        public override void OnFork(in PerfTaskEvent f) => Add(f.Record);
        public override void OnExit(in PerfTaskEvent e) => Add(e.Record);
        public override void OnDeferredCallchain(in PerfDeferredCallchain d) => Add(d.Record);
        public override void OnOtherRecord(in PerfRecord r) => Add(r);
    }

    private static (List<(PerfRecordType Type, byte[] Bytes)> Records, PerfSession Session, ErrorTally Tally) Records(byte[] data, PerfRecordOrder order)
    {
        var tally = new ErrorTally();
        var reader = new PerfRecordReader(new MemoryStream(data), "data", new PerfReadOptions { Order = order }, tally);
        var list = new RecordList();
        reader.Run(list);
        return (list.Records, reader.Session, tally);
    }

    // capture, samples (all inside execve) whose user frames resolve differently at the sample's time than at the record's
    [Theory]
    [InlineData("recur-defer", 0)]
    [InlineData("bash-defer", 5)]
    public void RoundTripKeepsEverythingButTheDeferral(string capture, int expectedExecWindow)
    {
        byte[] input = Capture(capture);
        var (output, result, tally) = Inject(input);
        Assert.True(tally.IsEmpty, string.Join("; ", tally.Counts));
        int deferred = int.Parse(Fixtures.ReadText("perf-defer", capture, "count-callchain-deferred.txt").Trim());
        Assert.Equal(deferred, result.DeferredRecordsRemoved);
        Assert.Equal(result.Join.DeferredSamples, result.SamplesRewritten);

        var (inRecs, inSession, _) = Records(input, PerfRecordOrder.Time);
        var (outRecs, outSession, outTally) = Records(output, PerfRecordOrder.File);
        Assert.True(outTally.IsEmpty, string.Join("; ", outTally.Counts));

        // Attrs: the same but for the defer bits (and the all-zero tail past 128 bytes); ids and names kept.
        Assert.Equal(inSession.Events.Count, outSession.Events.Count);
        for (int i = 0; i < inSession.Events.Count; i++)
        {
            var a = inSession.Events[i];
            var b = outSession.Events[i];
            Assert.True(a.Attr.DeferCallchain && a.Attr.DeferOutput);
            Assert.False(b.Attr.DeferCallchain || b.Attr.DeferOutput);
            Assert.Equal(a.Attr.Flags & ~(PerfAttrFlags.DeferCallchain | PerfAttrFlags.DeferOutput), b.Attr.Flags);
            Assert.Equal((144u, 128u), (a.Attr.Size, b.Attr.Size));
            Assert.Equal((a.Attr.Type, a.Attr.Config, a.Attr.SamplePeriod, a.Attr.SampleType, a.Attr.ReadFormat, a.Attr.Config3),
                (b.Attr.Type, b.Attr.Config, b.Attr.SamplePeriod, b.Attr.SampleType, b.Attr.ReadFormat, b.Attr.Config3));
            Assert.Equal(a.Ids, b.Ids);
            Assert.Equal(a.Name, b.Name);
        }
        // Features: every one kept byte for byte, EVENT_DESC rebuilt from the new attrs.
        Assert.Equal(inSession.RawFeatures.Keys.Order(), outSession.RawFeatures.Keys.Order());
        foreach (var (f, payload) in inSession.RawFeatures)
            if (f != PerfFeature.EventDesc) Assert.True(payload.AsSpan().SequenceEqual(outSession.RawFeatures[f]), $"feature {f}");
        Assert.Equal((inSession.Hostname, inSession.OsRelease, inSession.PerfVersion), (outSession.Hostname, outSession.OsRelease, outSession.PerfVersion));
        Assert.Equal(inSession.Cmdline, outSession.Cmdline);
        Assert.Equal(inSession.BuildIds.Select(x => x.ToString()), outSession.BuildIds.Select(x => x.ToString()));

        // Records: no deferred one left; every other non-sample record byte for byte, in the same (time) order.
        Assert.DoesNotContain(outRecs, r => r.Type == PerfRecordType.CallchainDeferred);
        var inOther = inRecs.Where(r => r.Type is not (PerfRecordType.Sample or PerfRecordType.CallchainDeferred)).ToList();
        var outOther = outRecs.Where(r => r.Type != PerfRecordType.Sample).ToList();
        Assert.Equal(inOther.Count, outOther.Count);
        for (int i = 0; i < inOther.Count; i++) Assert.True(inOther[i].Bytes.AsSpan().SequenceEqual(outOther[i].Bytes), $"record {i} ({inOther[i].Type})");

        // Samples: in time order in the file; each the original but for its callchain.
        var parserIn = new PerfSampleParser(inSession);
        var parserOut = new PerfSampleParser(outSession);
        var inSamples = inRecs.Where(r => r.Type == PerfRecordType.Sample).Select(r => r.Bytes).ToList();
        var outSamples = outRecs.Where(r => r.Type == PerfRecordType.Sample).Select(r => r.Bytes).ToList();
        Assert.Equal(inSamples.Count, outSamples.Count);
        ulong last = 0;
        for (int i = 0; i < inSamples.Count; i++)
        {
            Assert.True(parserIn.TryParseSample(inSamples[i], 0, out var a, out _));
            Assert.True(parserOut.TryParseSample(outSamples[i], 0, out var b, out _));
            Assert.True(b.Time >= last, $"sample {i} out of time order");
            last = b.Time;
            Assert.Equal((a.Ip, a.Pid, a.Tid, a.Time, a.Period, a.Record.Misc), (b.Ip, b.Pid, b.Tid, b.Time, b.Period, b.Record.Misc));
            Assert.True(a.HasDeferredUserCallchain);
            Assert.False(b.HasDeferredUserCallchain);
            Assert.DoesNotContain(PerfContext.UserDeferred, b.Callchain.ToArray());
            // The kernel part is the original's, unchanged.
            var kernel = a.Callchain[..^2];
            Assert.True(b.Callchain[..kernel.Length].SequenceEqual(kernel), $"sample {i}: kernel part");
            Assert.Equal(PerfContext.User, b.Callchain[kernel.Length]);
        }

        // Frames: reading the injected file gives the joiner's stacks: same addresses and kinds; the same
        // mappings, except for samples taken while an exec was mapping the new image: a tool reading the
        // injected file names user frames with the maps as of the sample, the joiner (like perf 7.2) with
        // the maps as of the deferred record, after the new image's MMAP2s.
        var (joined, _, _) = DeferredJoinerRealTests.Join(capture);
        var (plain, plainTally, _) = Run.Samples(new MemoryStream(output), "injected");
        Assert.Equal(0, plainTally.ErrorCount);
        var byKey = joined.ToDictionary(s => (s.Tid, s.Time));
        var execWindow = new List<ulong>();
        foreach (var s in plain)
        {
            var j = byKey[(s.Tid, s.Time)];
            Assert.Equal(j.Frames.Select(f => (f.Address, f.Kind)), s.Frames.Select(f => (f.Address, f.Kind)));
            if (j.Comm == s.Comm && j.Frames.Select(f => (f.Mapping?.Path, f.Mapping?.Start)).SequenceEqual(s.Frames.Select(f => (f.Mapping?.Path, f.Mapping?.Start)))) continue;
            execWindow.Add(s.Time);
            // The difference is only mappings that did not exist yet at the sample's time.
            for (int k = 0; k < s.Frames.Count; k++)
                if (s.Frames[k].Mapping?.Start != j.Frames[k].Mapping?.Start) Assert.Null(s.Frames[k].Mapping);
        }
        Assert.True(expectedExecWindow == execWindow.Count, $"{execWindow.Count} samples resolve differently: {string.Join(", ", execWindow)}");
        var perf72 = PerfScriptText.Parse(Fixtures.ReadText("perf-defer", capture, "script-F.txt.gz")).ToDictionary(x => x.TimeMicros);
        Assert.All(execWindow, t => Assert.Contains(perf72[t / 1000].Frames, f => f.Symbol.StartsWith("__x64_sys_execve+", StringComparison.Ordinal)));

        // Injecting the injected file changes nothing (no deferred sample, attrs already plain).
        var (again, againResult, _) = Inject(output);
        Assert.Equal(0, againResult.Join.DeferredSamples);
        Assert.Equal(output, again);
    }

    [Theory]
    [InlineData("recur-defer")]
    [InlineData("bash-defer")]
    public void PipeModeInputGivesTheSameFile(string capture)
    {
        // Synthetic: the real capture re-framed as `perf record -o -` would stream it (HEADER_ATTR, HEADER_FEATURE
        // records, then the data records as stored).
        byte[] file = Capture(capture);
        byte[] pipe = ToPipeMode(file);
        var (fromFile, _, _) = Inject(file);
        var (fromPipe, pipeResult, pipeTally) = Inject(pipe);
        Assert.True(pipeTally.IsEmpty, string.Join("; ", pipeTally.Counts));
        Assert.True(pipeResult.HeaderRecordsRemoved > 0);
        Assert.Equal(fromFile, fromPipe);
    }

    /// <summary>A file-mode perf.data as a pipe-mode stream: PERFILE2 + size 16, HEADER_ATTR per event, HEADER_FEATURE per feature, end marker, records.</summary>
    internal static byte[] ToPipeMode(byte[] file)
    {
        var (records, session, _) = Records(file, PerfRecordOrder.File);
        var ms = new MemoryStream();
        ms.Write("PERFILE2"u8);
        ms.Write(BitConverter.GetBytes(16UL));
        void Rec(PerfRecordType type, byte[] body)
        {
            var h = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)type);
            BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(6), (ushort)(8 + body.Length));
            ms.Write(h);
            ms.Write(body);
        }
        foreach (var e in session.Events)
        {
            var attr = e.Attr.RawBytes!;
            var body = new byte[attr.Length + 8 * e.Ids.Length];
            attr.CopyTo(body, 0);
            for (int i = 0; i < e.Ids.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(body.AsSpan(attr.Length + 8 * i), e.Ids[i]);
            Rec(PerfRecordType.HeaderAttr, body);
        }
        foreach (var (f, payload) in session.RawFeatures.OrderBy(kv => kv.Key))
        {
            var body = new byte[8 + payload.Length];
            BinaryPrimitives.WriteUInt64LittleEndian(body, (ulong)f);
            payload.CopyTo(body, 8);
            Rec(PerfRecordType.HeaderFeature, body);
        }
        Rec(PerfRecordType.HeaderFeature, BitConverter.GetBytes(32UL)); // HEADER_LAST_FEATURE: the end marker
        foreach (var (_, bytes) in records) ms.Write(bytes);
        return ms.ToArray();
    }

    [Fact]
    public void LostSamplesEndAtTheirKernelPart()
    {
        const ulong T = DeferredSynth.T0;
        var data = new DeferredSynth()
            .Sample(360, T + 100, 0x1_0000_0001)                 // lost: the next entry comes first
            .Sample(360, T + 200, 0x2_0000_0001)
            .Sample(361, T + 250, 0x3_0000_0001, userMode: true) // lost at the end, user mode: an empty chain
            .Deferred(360, T + 300, 0x2_0000_0001)
            .Build();
        var (output, result, tally) = Inject(data);
        Assert.Equal((1L, 1L, 1L), (result.Join.JoinedLater, result.Join.LostNextEntry, result.Join.LostAtEnd));
        Assert.Equal(1, tally.CountOf("perf.deferred.lost-next-entry"));
        var (recs, session, _) = Records(output, PerfRecordOrder.File);
        var parser = new PerfSampleParser(session);
        var samples = recs.Where(r => r.Type == PerfRecordType.Sample)
            .Select(r => { Assert.True(parser.TryParseSample(r.Bytes, 0, out var s, out _)); return (s.Tid, s.Time, Chain: s.Callchain.ToArray()); }).ToList();
        // File order = time order, whatever order the joiner released them in.
        Assert.Equal([(360, T + 100), (360, T + 200), (361, T + 250)], samples.Select(s => (s.Tid, s.Time)));
        var p = DeferredSynth.Recur.Value;
        Assert.True(new PerfSampleParser(p.Session).TryParseSample(p.KernelSample, 0, out var template, out _));
        var kernel = template.Callchain[..^2].ToArray();
        Assert.Equal(kernel, samples[0].Chain);
        Assert.Equal(kernel.Append(PerfContext.User).Concat(p.Ips), samples[1].Chain);
        Assert.Empty(samples[2].Chain);
    }

    [Fact]
    public void QueueBehindAHeldSampleIsBounded()
    {
        const ulong T = DeferredSynth.T0;
        var synth = new DeferredSynth().Sample(360, T + 100, 0x1_0000_0001);
        for (int i = 0; i < 50; i++) synth.Comm(360, $"name{i}", T + 200 + (ulong)i); // records that queue behind the held sample
        var data = synth.Deferred(360, T + 300, 0x1_0000_0001).Build();

        var (roomy, roomyResult, _) = Inject(data);
        Assert.Equal(1, roomyResult.Join.JoinedLater);
        var (tight, tightResult, tally) = Inject(data, new PerfInjectOptions { MaxQueuedBytes = 1000 });
        Assert.Equal((0L, 1L), (tightResult.Join.JoinedLater, tightResult.Join.LostOverflow));
        Assert.Equal(1, tally.CountOf("perf.deferred.lost-overflow"));
        Assert.Equal(roomy.Length - 8 * (1 + DeferredSynth.Recur.Value.Ips.Length), tight.Length); // the same file, but for PERF_CONTEXT_USER + ips
        Assert.Equal(Records(roomy, PerfRecordOrder.File).Records.Select(r => r.Type), Records(tight, PerfRecordOrder.File).Records.Select(r => r.Type));
    }

    // capture, samples perf 7.2 left with their cookie (stitched by us), samples inside execve whose user frames name
    // a mapping the new image had not got yet at the sample's time
    [NeedsPerfTheory]
    [InlineData("recur-defer", 2, 0)]
    [InlineData("bash-defer", 0, 5)]
    public void SystemPerfScriptShowsPerf72sUserFrames(string capture, int expectedStitched, int expectedExecWindow)
    {
        // perf 6.1 knows nothing of deferral: it refuses the original (SystemPerfCannotReadTheOriginal). On the
        // injected file it must show, sample for sample, the frames perf 7.2 showed for the original.
        // Exceptions, asserted on their own: samples perf 7.2 could not merge (stitched by us: perf 6.1 shows our
        // stack), and samples taken inside execve before the new image's MMAP2s: perf 6.1, like any tool reading an
        // ordinary callchain, names user frames with the maps as of the sample, where the new image is not mapped
        // yet; perf 7.2 named them as of the deferred record (and perf 7.2 took the comm from there too).
        // perf 6.1 prints a user address in a file-backed dso file-relative (ip - map start + pgoff); it has no
        // kallsyms of the guest, so kernel frames are compared by address; symbols come from the binaries in
        // fixtures/perf-defer/symfs (not libc/ld.so, which perf 6.1 then leaves [unknown]).
        byte[] input = Capture(capture);
        var (output, _, _) = Inject(input);
        string dir = Directory.CreateTempSubdirectory("tu-inject-").FullName;
        try
        {
            string path = Path.Combine(dir, "injected.data");
            File.WriteAllBytes(path, output);
            string symfs = Fixtures.Path("perf-defer", "symfs");
            var (code, stdout, stderr) = SystemPerf.Run(["script", "-i", path, "-F", "comm,pid,tid,time,event,ip,sym,dso,symoff", "--symfs", symfs],
                TimeSpan.FromMinutes(2));
            Assert.True(code == 0, $"{SystemPerf.Version}: exit {code}: {stderr}");
            var p61 = PerfScriptText.Parse(stdout);
            var p72 = PerfScriptText.Parse(Fixtures.ReadText("perf-defer", capture, "script-F.txt.gz")).ToDictionary(x => (x.Tid, x.TimeMicros));
            var unmerged = DeferredJoinerRealTests.PerfUnmerged(capture);
            var joined = DeferredJoinerRealTests.Join(capture).Samples.ToDictionary(x => (x.Tid, x.Time / 1000));
            var plain = Run.Samples(new MemoryStream(output), "injected").Samples.ToDictionary(x => (x.Tid, x.Time / 1000));
            Assert.Equal(p72.Count, p61.Count);
            int same = 0, stitched = 0, execWindow = 0, dropped = 0, userFrames = 0, symbols = 0;
            foreach (var s in p61)
            {
                var key = (s.Tid, s.TimeMicros);
                var old = p72[key];
                var o = plain[key];
                string at = $"{capture} {s.Tid} {s.Seconds}.{s.Micros:D6}";
                Assert.Equal((old.Pid, old.Event), (s.Pid, s.Event));
                if (old.Frames.Count == 0)
                {
                    // A deferred chain with a junk marker-range word: perf 7.2 dropped the whole chain, so does perf 6.1.
                    Assert.Empty(s.Frames);
                    dropped++;
                    continue;
                }
                // perf 6.1 against our own reading of the injected file: comm, addresses, dsos.
                Assert.Equal(o.Comm, s.Comm);
                Assert.True(s.Frames.Count == o.Frames.Count, $"{at}: perf 6.1 {s.Frames.Count} frames, ours {o.Frames.Count}");
                for (int k = 0; k < s.Frames.Count; k++)
                {
                    var f = s.Frames[k];
                    var of = o.Frames[k];
                    Assert.Equal(of.Kind == FrameKind.Kernel ? "[kernel.kallsyms]" : of.Mapping?.Path ?? "[unknown]", f.Dso);
                    ulong shown = of.Kind != FrameKind.Kernel && of.Mapping is { IsFileBacked: true } m ? m.FileOffset(of.Address) : of.Address;
                    Assert.True(shown == f.Address, $"{at} frame {k}: perf 6.1 {f.Address:x}, ours {shown:x}");
                    if (of.Kind == FrameKind.User) userFrames++;
                }
                var j = joined[key];
                bool sameMaps = j.Comm == o.Comm && j.Frames.Select(f => (f.Mapping?.Path, f.Mapping?.Start)).SequenceEqual(o.Frames.Select(f => (f.Mapping?.Path, f.Mapping?.Start)));
                if (unmerged.Contains(key)) { stitched++; continue; }
                if (!sameMaps)
                {
                    execWindow++;
                    Assert.Contains(old.Frames, f => f.Symbol.StartsWith("__x64_sys_execve+", StringComparison.Ordinal));
                    continue;
                }
                // Everything else: what perf 7.2 showed for the original.
                same++;
                Assert.Equal(old.Comm, s.Comm);
                Assert.Equal(old.Frames.Count, s.Frames.Count);
                for (int k = 0; k < s.Frames.Count; k++)
                {
                    var f = s.Frames[k];
                    var g = old.Frames[k];
                    Assert.Equal(g.Dso, f.Dso);
                    if (g.Dso == "[kernel.kallsyms]") { Assert.Equal(g.Address, f.Address); continue; }
                    if (File.Exists(symfs + g.Dso))
                    {
                        Assert.True(g.Symbol == f.Symbol, $"{at} frame {k}: perf 6.1 {f.Symbol} vs perf 7.2 {g.Symbol}");
                        symbols++;
                    }
                    else Assert.True(f.Symbol == "[unknown]" || f.Symbol == g.Symbol, $"{at} frame {k}: perf 6.1 {f.Symbol} vs perf 7.2 {g.Symbol}");
                }
            }
            Assert.Equal(expectedStitched, stitched);
            Assert.Equal(expectedExecWindow, execWindow);
            Assert.Equal(p72.Count - expectedStitched - expectedExecWindow - dropped, same);
            Assert.True(userFrames > 1000 && (capture != "recur-defer" || symbols > 1000), $"{userFrames} user frames, {symbols} symbols compared");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [NeedsPerfFact]
    public void SystemPerfCannotReadTheOriginal()
    {
        // Why inject exists: perf 6.1 refuses the 144-byte attr of perf 7.2.
        var (_, stdout, stderr) = SystemPerf.Run(["script", "-i", Fixtures.Path("perf-defer", "recur-defer", "perf.data")], TimeSpan.FromMinutes(1));
        Assert.Contains("incompatible file format", stderr);
        Assert.Equal("", stdout);
    }
}
