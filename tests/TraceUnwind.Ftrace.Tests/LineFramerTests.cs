using System.Buffers;
using System.Text;
using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Ftrace.Pipeline;
using TraceUnwind.Ftrace.Rewrite;
using TraceUnwind.Testing;

namespace TraceUnwind.Ftrace.Tests;

/// <summary>
/// The line framer under every prefix and every split of real input (Kestrel's HttpParserTests
/// and System.Text.Json's JsonTestHelper habits): it must hand out exactly the complete lines,
/// consume exactly up to the last newline, and write every byte it does not replace unchanged.
/// </summary>
public class LineFramerTests
{
    private sealed class Recorder : ILineHandler
    {
        public readonly List<byte[]> Lines = new();
        public readonly List<LinePosition> Positions = new();
        public int LongLines;
        public int Idle;

        public bool OnLine(ReadOnlySpan<byte> line, in LinePosition position, out ReadOnlySpan<byte> replacement)
        {
            Lines.Add(line.ToArray());
            Positions.Add(position);
            replacement = default;
            return false;
        }

        public void OnLongLine(in LinePosition position) => LongLines++;
        public void OnIdle() => Idle++;
    }

    /// <summary>Real lines (a header, an event, a user stack) plus CRLF, invalid UTF-8 and an empty line.</summary>
    private static byte[] Sample()
    {
        var head = Fixtures.ReadBytes("ftrace", "formats", "72_fake_frames_raw.txt").AsSpan(0, 1400).ToArray();
        int cut = Array.LastIndexOf(head, (byte)'\n') + 1;
        var extra = new byte[] { 0xff, 0xfe, (byte)' ', 0x80, (byte)'x', (byte)'\r', (byte)'\n', (byte)'\n', (byte)'a', (byte)'\r', (byte)'\n', (byte)'e', (byte)'n', (byte)'d' };
        return [.. head.AsSpan(0, cut), .. extra];
    }

    private static List<byte[]> ExpectedLines(byte[] data, bool includePartial)
    {
        var lines = new List<byte[]>();
        int start = 0;
        for (int i = 0; i < data.Length; i++)
        {
            if (data[i] != (byte)'\n') continue;
            int end = i > start && data[i - 1] == (byte)'\r' ? i - 1 : i;
            lines.Add(data[start..end]);
            start = i + 1;
        }
        if (includePartial && start < data.Length)
        {
            int end = data[^1] == (byte)'\r' ? data.Length - 1 : data.Length;
            lines.Add(data[start..end]);
        }
        return lines;
    }

    [Fact]
    public void EveryPrefixGivesExactlyTheCompleteLines()
    {
        var data = Sample();
        for (int n = 0; n <= data.Length; n++)
        {
            var prefix = data[..n];
            int lastNl = Array.LastIndexOf(prefix, (byte)'\n') + 1;
            foreach (bool final in new[] { false, true })
            {
                var rec = new Recorder();
                var framer = new LineFramer(rec);
                var output = new ArrayBufferWriter<byte>();
                var seq = new ReadOnlySequence<byte>(prefix);
                var consumed = framer.Process(seq, final, output);
                long used = seq.Slice(0, consumed).Length;
                Assert.Equal(final ? n : lastNl, used);
                Assert.Equal(final ? n : lastNl, framer.ByteOffset);
                Assert.Equal(prefix[..(int)used], output.WrittenSpan.ToArray());
                var expected = ExpectedLines(prefix, final);
                Assert.Equal(expected.Count, rec.Lines.Count);
                for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], rec.Lines[i]);
            }
        }
    }

    [Fact]
    public void EverySplitGivesTheSameLinesAndPositions()
    {
        var data = Sample();
        var reference = new Recorder();
        new LineFramer(reference).Process(new ReadOnlySequence<byte>(data), true, null);
        foreach (var seq in Segmented.EverySplit(data).Concat([Segmented.Chunks(data, 1), Segmented.Chunks(data, 7), Segmented.Chunks(data, 64)]))
        {
            var rec = new Recorder();
            var output = new ArrayBufferWriter<byte>();
            var consumed = new LineFramer(rec).Process(seq, true, output);
            Assert.Equal(seq.End, consumed);
            Assert.Equal(data, output.WrittenSpan.ToArray());
            Assert.Equal(reference.Lines.Count, rec.Lines.Count);
            for (int i = 0; i < rec.Lines.Count; i++)
            {
                Assert.Equal(reference.Lines[i], rec.Lines[i]);
                Assert.Equal(reference.Positions[i], rec.Positions[i]);
            }
        }
    }

    /// <summary>
    /// The rewrite, fed every two-segment split of a real raw trace and then fed piecewise as a
    /// pipe delivers it (unconsumed bytes offered again with more), writes the same bytes.
    /// </summary>
    [Fact]
    public void RewriteIsTheSameForEverySplitAndEveryChunkSize()
    {
        var data = Fixtures.ReadBytes("ftrace", "formats", "72_fake_frames_raw.txt");
        var expected = Fixtures.ReadBytes("ftrace", "formats", "72_fake_frames_sym-userobj.txt");
        var maps = Maps();
        foreach (var seq in Segmented.EverySplit(data))
        {
            var output = new ArrayBufferWriter<byte>();
            new LineFramer(new UserStackRewriter(new RewriteOptions { Maps = maps })).Process(seq, true, output);
            Assert.Equal(expected, output.WrittenSpan.ToArray());
        }
        foreach (int chunk in new[] { 1, 2, 3, 5, 17, 100, 1000 })
        {
            var output = new ArrayBufferWriter<byte>();
            var framer = new LineFramer(new UserStackRewriter(new RewriteOptions { Maps = maps }));
            byte[] pending = [];
            for (int pos = 0; pos < data.Length || pending.Length > 0;)
            {
                int take = Math.Min(chunk, data.Length - pos);
                var buffer = pending.Concat(data.Skip(pos).Take(take)).ToArray();
                pos += take;
                bool final = pos >= data.Length;
                var seq = new ReadOnlySequence<byte>(buffer);
                var consumed = framer.Process(seq, final, output);
                pending = seq.Slice(consumed).ToArray();
                if (final) { Assert.Empty(pending); break; }
            }
            Assert.Equal(expected, output.WrittenSpan.ToArray());
        }
    }

    private static MapsSnapshots Maps()
    {
        var snaps = new MapsSnapshots();
        MapsSnapshotReader.Read(Encoding.UTF8.GetBytes("==> /proc/17388/maps <==\n" + Fixtures.ReadText("ftrace", "formats", "72_fake_frames.maps")), "72", snaps);
        return snaps;
    }

    [Fact]
    public void InvalidUtf8CrLfAndMissingFinalNewlinePassThrough()
    {
        byte[] input =
        [
            0xff, 0xfe, .. " => "u8, 0xc3, 0x28, .. "\n"u8,
            .. "    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\r\n"u8,
            .. " =>  <0000562c3a152202>\r\n"u8,
            .. " =>  <00007fffffffeff0>\r\n"u8,
            .. " =>  <00007fa7711be24a>"u8,
        ];
        byte[] expected =
        [
            0xff, 0xfe, .. " => "u8, 0xc3, 0x28, .. "\n"u8,
            .. "    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\r\n"u8,
            .. " => /tmp/tu/bin/probe_helper[+0x202]\r\n"u8,
            .. " =>  <00007fffffffeff0>\r\n"u8,
            .. " => /usr/lib/x86_64-linux-gnu/libc.so.6[+0x124a]"u8,
        ];
        Assert.Equal(expected, FtraceTestData.Rewrite(input, new RewriteOptions { Maps = Maps() }));
        // Nothing to rewrite: every byte as it came, also as a pipe.
        byte[] junk = [0x00, 0xff, (byte)'\r', (byte)'\r', (byte)'\n', 0xc0, 0x80, (byte)'\n', (byte)'\r'];
        Assert.Equal(junk, FtraceTestData.Rewrite(junk, new RewriteOptions { Maps = Maps() }));
        Assert.Equal(junk, FtraceTestData.Rewrite(junk, new RewriteOptions { Maps = Maps() }, seekable: false));
    }

    [Fact]
    public void OverlongLinesPassThroughUnchangedAndAreCounted()
    {
        var longLine = new string('x', 500) + " =>  <0000562c3a152202>";
        var text = "    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\n" +
                   longLine + "\n" +
                   " =>  <0000562c3a152202>\n" +                       // after the long line: no longer in the block
                   "    probe_helper-17388   [001] .....  3682.364401: <user stack trace>\n" +
                   " =>  <0000562c3a152202>\n" +
                   longLine;                                           // and a final one without newline
        var expected = text.Replace(" =>  <0000562c3a152202>\n" + longLine, " => /tmp/tu/bin/probe_helper[+0x202]\n" + longLine);
        var data = Encoding.UTF8.GetBytes(text);
        foreach (var seq in Segmented.EverySplit(data).Concat([Segmented.Chunks(data, 1), Segmented.Chunks(data, 13)]))
        {
            var tally = new ErrorTally();
            var output = new ArrayBufferWriter<byte>();
            new LineFramer(new UserStackRewriter(new RewriteOptions { Maps = Maps() }), 200, tally, "t").Process(seq, true, output);
            Assert.Equal(expected, Encoding.UTF8.GetString(output.WrittenSpan));
            Assert.Equal(2, tally.CountOf(LineFramer.LongLineCode));
        }
        // Fed as a pipe delivers it, the long line is passed through before its end arrives.
        var tally2 = new ErrorTally();
        var rewritten = FtraceTestData.Rewrite(data, new RewriteOptions { Maps = Maps(), MaxLineLength = 200 }, tally2, seekable: false);
        Assert.Equal(expected, Encoding.UTF8.GetString(rewritten));
        Assert.Equal(2, tally2.CountOf(LineFramer.LongLineCode));
        // The example names the source, line and byte offset of the long line.
        var tally3 = new ErrorTally();
        new LineFramer(new Recorder(), 200, tally3, "t").Process(new ReadOnlySequence<byte>(data), true, null);
        Assert.StartsWith("t:2 (byte offset 70): line longer than 200 bytes", tally3.ExamplesOf(LineFramer.LongLineCode)[0]);
    }
}
