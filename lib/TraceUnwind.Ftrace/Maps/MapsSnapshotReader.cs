using TraceUnwind.Diagnostics;
using TraceUnwind.Processes;

namespace TraceUnwind.Ftrace.Maps;

/// <summary>
/// Reads <c>--maps</c> input into <see cref="MapsSnapshots"/>: what
/// <c>tail -n +1 /proc/[0-9]*/maps</c> prints, sections of <c>/proc/PID/maps</c> lines each
/// under a header, optionally timed:
/// <code>
/// ==> /proc/12008/maps &lt;==
/// 55a288cb4000-55a288cb5000 r--p 00000000 fe:00 11837441                   /tmp/tu/bin/hold
/// ...
///
/// ==> /proc/12537/task/12542/maps &lt;== @ 3151.151372
/// ...
/// </code>
/// The header's path must end in <c>PID/maps</c> or <c>TGID/task/TID/maps</c> (any prefix, so a
/// copied <c>/host/proc</c> works). <c>@ SECONDS</c> is in the trace's clock. A directory means
/// every regular file in it, by name.
/// </summary>
public static class MapsSnapshotReader
{
    /// <summary>A section line that is not a maps line (skipped).</summary>
    public const string BadLineCode = "ftrace.maps.bad-line";

    /// <summary>Loads files and directories.</summary>
    /// <exception cref="TraceFormatException">A file has maps lines before any header, or a header that names no pid.</exception>
    /// <exception cref="IOException">A path cannot be read.</exception>
    public static MapsSnapshots Load(IEnumerable<string> paths, ErrorTally? tally = null)
    {
        var snaps = new MapsSnapshots();
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
            {
                foreach (var f in Directory.GetFiles(path).OrderBy(f => f, StringComparer.Ordinal))
                    Read(File.ReadAllBytes(f), f, snaps, tally);
            }
            else
            {
                Read(File.ReadAllBytes(path), path, snaps, tally);
            }
        }
        return snaps;
    }

    /// <summary>Reads one snapshot text into <paramref name="into"/>.</summary>
    /// <exception cref="TraceFormatException">Maps lines before any header, or a header that names no pid.</exception>
    public static void Read(ReadOnlySpan<byte> text, string sourceName, MapsSnapshots into, ErrorTally? tally = null)
    {
        int tgid = -1, tid = -1;
        SnapshotTime? time = null;
        List<Mapping>? current = null;
        long lineNo = 0, offset = 0;
        while (!text.IsEmpty)
        {
            lineNo++;
            int nl = text.IndexOf((byte)'\n');
            var line = nl < 0 ? text : text[..nl];
            long lineOffset = offset;
            offset += nl < 0 ? text.Length : nl + 1;
            text = nl < 0 ? default : text[(nl + 1)..];
            if (!line.IsEmpty && line[^1] == (byte)'\r') line = line[..^1];
            if (line.IsEmpty) continue;
            if (line.StartsWith("==> "u8))
            {
                if (current is not null) into.Add(tgid, tid, time, current, $"{sourceName}:{tgid}/{tid}");
                if (!TryParseHeader(line, out tgid, out tid, out time))
                    throw new TraceFormatException(
                        $"maps snapshot header does not name a process (expected '==> /proc/PID/maps <==' or '==> /proc/TGID/task/TID/maps <==', optionally followed by ' @ SECONDS'): {Escape(line)}",
                        new InputPosition(sourceName, lineOffset, lineNo));
                current = new List<Mapping>();
                continue;
            }
            if (!ProcMapsParser.TryParse(line, out var m))
            {
                if (current is null)
                    throw new TraceFormatException(
                        "not a maps snapshot: expected a '==> /proc/PID/maps <==' header first (what `tail -n +1 /proc/[0-9]*/maps` prints)",
                        new InputPosition(sourceName, lineOffset, lineNo));
                tally?.Add(BadLineCode, new InputPosition(sourceName, lineOffset, lineNo), $"not a /proc/PID/maps line: {Escape(line)}");
                continue;
            }
            if (current is null)
                throw new TraceFormatException(
                    "maps lines before any '==> /proc/PID/maps <==' header: the process they belong to is unknown",
                    new InputPosition(sourceName, lineOffset, lineNo));
            current.Add(m.ToMapping());
        }
        if (current is not null) into.Add(tgid, tid, time, current, $"{sourceName}:{tgid}/{tid}");
    }

    /// <summary>Parses <c>==> /proc/PID/maps &lt;==</c> or <c>==> /proc/TGID/task/TID/maps &lt;==</c>, then optional <c> @ SECONDS</c>.</summary>
    public static bool TryParseHeader(ReadOnlySpan<byte> line, out int tgid, out int tid, out SnapshotTime? time)
    {
        tgid = tid = -1;
        time = null;
        if (!line.StartsWith("==> "u8)) return false;
        int close = line.IndexOf(" <=="u8);
        if (close < 0) return false;
        var path = line[4..close];
        var rest = line[(close + 4)..].Trim((byte)' ');
        if (!rest.IsEmpty)
        {
            if (rest[0] != (byte)'@' || !SnapshotTime.TryParse(rest[1..].TrimStart((byte)' '), out var t)) return false;
            time = t;
        }
        // .../PID/maps or .../TGID/task/TID/maps
        if (!path.EndsWith("/maps"u8)) return false;
        path = path[..^5];
        var last = LastComponent(path, out path);
        if (!Parsing.EventLineParser.TryParseInt(last, out int id)) return false;
        var prev = LastComponent(path, out var beforeTask);
        if (prev.SequenceEqual("task"u8))
        {
            var leader = LastComponent(beforeTask, out _);
            if (!Parsing.EventLineParser.TryParseInt(leader, out tgid)) return false;
            tid = id;
        }
        else
        {
            tgid = tid = id;
        }
        return true;
    }

    private static ReadOnlySpan<byte> LastComponent(ReadOnlySpan<byte> path, out ReadOnlySpan<byte> parent)
    {
        int slash = path.LastIndexOf((byte)'/');
        parent = slash < 0 ? default : path[..slash];
        return slash < 0 ? path : path[(slash + 1)..];
    }

    private static string Escape(ReadOnlySpan<byte> line)
    {
        var s = System.Text.Encoding.UTF8.GetString(line.Length > 200 ? line[..200] : line);
        return new string(s.Select(c => c < ' ' ? '?' : c).ToArray());
    }
}
