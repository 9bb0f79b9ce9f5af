using System.Buffers.Text;
using System.Text;

namespace TraceUnwind.Processes;

/// <summary>One parsed line of <c>/proc/PID/maps</c>; <see cref="Path"/> views the input line.</summary>
public readonly ref struct ProcMapsLine
{
    public ulong Start { get; init; }
    public ulong End { get; init; }
    public uint Prot { get; init; }
    public bool Shared { get; init; }
    public ulong PgOff { get; init; }
    public uint Major { get; init; }
    public uint Minor { get; init; }
    public ulong Inode { get; init; }
    /// <summary>Everything after the inode column and its padding: may hold spaces and end in <c> (deleted)</c>; empty for anonymous memory.</summary>
    public ReadOnlySpan<byte> Path { get; init; }

    public Mapping ToMapping() =>
        new(Start, End, PgOff, Encoding.UTF8.GetString(Path), Prot,
            Path.IsEmpty ? MappingKind.Anonymous : null, inode: Inode, major: Major, minor: Minor);
}

/// <summary>
/// Parses <c>/proc/PID/maps</c> lines (fs/proc/task_mmu.c <c>show_map_vma</c>):
/// <code>
/// 55d0c6a2c000-55d0c6a2e000 r--p 00000000 fe:00 1234                       /usr/bin/cat
/// 7f2bbd2a4000-7f2bbd3f9000 r-xp 00026000 fe:00 332096                     /usr/lib/x86_64-linux-gnu/libc.so.6
/// 7ffd1c7e8000-7ffd1c809000 rw-p 00000000 00:00 0                          [stack]
/// 7f2bbd55a000-7f2bbd566000 rw-p 00000000 00:00 0
/// </code>
/// The path is the rest of the line after the padding, spaces included.
/// </summary>
public static class ProcMapsParser
{
    /// <summary>Parses one line (without its newline). False when the line is not a maps line.</summary>
    public static bool TryParse(ReadOnlySpan<byte> line, out ProcMapsLine result)
    {
        result = default;
        if (!TakeHex(ref line, (byte)'-', out ulong start)) return false;
        if (!TakeHex(ref line, (byte)' ', out ulong end)) return false;
        if (line.Length < 5 || line[4] != (byte)' ') return false;
        uint prot = (line[0] == 'r' ? Mapping.ProtRead : 0) | (line[1] == 'w' ? Mapping.ProtWrite : 0) | (line[2] == 'x' ? Mapping.ProtExec : 0);
        bool shared = line[3] == 's';
        line = line[5..];
        if (!TakeHex(ref line, (byte)' ', out ulong pgoff)) return false;
        if (!TakeHex(ref line, (byte)':', out ulong major)) return false;
        if (!TakeHex(ref line, (byte)' ', out ulong minor)) return false;
        int sp = line.IndexOf((byte)' ');
        var inodeText = sp < 0 ? line : line[..sp];
        if (!Utf8Parser.TryParse(inodeText, out ulong inode, out int used) || used != inodeText.Length) return false;
        line = sp < 0 ? default : line[(sp + 1)..];
        int p = 0;
        while (p < line.Length && line[p] == (byte)' ') p++;
        var path = line[p..];
        if (!path.IsEmpty && path[^1] == (byte)'\r') path = path[..^1];
        if (end < start) return false;
        result = new ProcMapsLine
        {
            Start = start, End = end, Prot = prot, Shared = shared, PgOff = pgoff,
            Major = (uint)major, Minor = (uint)minor, Inode = inode, Path = path,
        };
        return true;
    }

    /// <summary>Parses every line of a maps text; lines that do not parse are returned as errors (1-based line numbers).</summary>
    public static List<Mapping> ParseAll(ReadOnlySpan<byte> text, List<int>? badLines = null)
    {
        var list = new List<Mapping>();
        int lineNo = 0;
        while (!text.IsEmpty)
        {
            lineNo++;
            int nl = text.IndexOf((byte)'\n');
            var line = nl < 0 ? text : text[..nl];
            text = nl < 0 ? default : text[(nl + 1)..];
            if (line.IsEmpty) continue;
            if (TryParse(line, out var m)) list.Add(m.ToMapping());
            else badLines?.Add(lineNo);
        }
        return list;
    }

    private static bool TakeHex(ref ReadOnlySpan<byte> s, byte terminator, out ulong value)
    {
        int i = s.IndexOf(terminator);
        if (i <= 0 || i > 16) { value = 0; return false; }
        if (!Utf8Parser.TryParse(s[..i], out value, out int used, 'x') || used != i) return false;
        s = s[(i + 1)..];
        return true;
    }
}
