using System.Text;

namespace TraceUnwind.Processes;

/// <summary>What backs a mapping, from its name (perf MMAP/MMAP2 filename, /proc/PID/maps path).</summary>
public enum MappingKind : byte
{
    /// <summary>A file (the kernel has a <c>vm_file</c>): <c>/usr/lib/libc.so.6</c>, <c>/memfd:x (deleted)</c>, <c>anon_inode:...</c>.</summary>
    File,
    /// <summary>Anonymous memory: empty name, <c>//anon</c>, <c>[anon:name]</c>, JIT code.</summary>
    Anonymous,
    /// <summary><c>[vdso]</c>, <c>[vsyscall]</c>, <c>[vvar]</c>, <c>[uprobes]</c>: kernel-provided user pages.</summary>
    Special,
    /// <summary><c>[heap]</c>.</summary>
    Heap,
    /// <summary><c>[stack]</c> (or <c>[stack:TID]</c> on old kernels).</summary>
    Stack,
    /// <summary>The kernel image or a module (<c>[kernel.kallsyms]_text</c>, pid -1 in perf).</summary>
    Kernel,
}

/// <summary>
/// One mapping of a process (a VMA as the kernel's <c>find_vma</c> sees it, or an MMAP2 record):
/// <c>[Start, End)</c> mapped from <see cref="Path"/> at file offset <see cref="PgOff"/>.
/// Immutable and shared: frames point at it, address spaces split it by making new ones.
/// </summary>
public sealed class Mapping
{
    public const uint ProtRead = 1, ProtWrite = 2, ProtExec = 4;

    public Mapping(ulong start, ulong end, ulong pgOff, string path, uint prot = ProtRead | ProtExec,
        MappingKind? kind = null, byte[]? buildId = null, ulong inode = 0, uint major = 0, uint minor = 0)
    {
        if (end < start) throw new ArgumentOutOfRangeException(nameof(end), $"mapping end 0x{end:x} below start 0x{start:x}");
        Start = start;
        End = end;
        PgOff = pgOff;
        Path = path;
        PathUtf8 = Encoding.UTF8.GetBytes(path);
        Prot = prot;
        Kind = kind ?? Classify(path);
        BuildId = buildId;
        Inode = inode;
        Major = major;
        Minor = minor;
    }

    private Mapping(Mapping m, ulong start, ulong end, ulong pgOff)
    {
        Start = start; End = end; PgOff = pgOff;
        Path = m.Path; PathUtf8 = m.PathUtf8; Prot = m.Prot; Kind = m.Kind; BuildId = m.BuildId;
        Inode = m.Inode; Major = m.Major; Minor = m.Minor;
    }

    /// <summary>First address (the kernel's <c>vm_start</c>).</summary>
    public ulong Start { get; }
    /// <summary>One past the last address (<c>vm_end</c>).</summary>
    public ulong End { get; }
    /// <summary>File offset of <see cref="Start"/> in bytes (<c>vm_pgoff &lt;&lt; PAGE_SHIFT</c>).</summary>
    public ulong PgOff { get; }
    /// <summary>The path as the kernel printed it (<c>d_path</c>, with <c> (deleted)</c> where it applies).</summary>
    public string Path { get; }
    /// <summary><see cref="Path"/> as UTF-8 bytes, for writers that emit bytes.</summary>
    public byte[] PathUtf8 { get; }
    public uint Prot { get; }
    public MappingKind Kind { get; }
    /// <summary>GNU build id when the capture carried one (MMAP2 build-id form, BUILD_ID feature).</summary>
    public byte[]? BuildId { get; }
    public ulong Inode { get; }
    public uint Major { get; }
    public uint Minor { get; }

    public ulong Size => End - Start;
    public bool IsFileBacked => Kind == MappingKind.File;
    public bool IsExecutable => (Prot & ProtExec) != 0;

    public bool Contains(ulong address) => address >= Start && address < End;

    /// <summary>
    /// The kernel's sym-userobj offset: <c>ip - vm_start</c>, unsigned 64-bit, so an address
    /// below the mapping wraps (kernel/trace/trace_output.c seq_print_user_ip).
    /// </summary>
    public ulong Offset(ulong address) => unchecked(address - Start);

    /// <summary>File-relative address, what perf 6.1 prints: <c>ip - start + pgoff</c>.</summary>
    public ulong FileOffset(ulong address) => unchecked(address - Start + PgOff);

    /// <summary>The path without a trailing <c> (deleted)</c>, for opening the file.</summary>
    public string FilePath => Path.EndsWith(" (deleted)", StringComparison.Ordinal) ? Path[..^10] : Path;

    /// <summary>A copy covering <c>[start, end)</c> of this mapping (pgoff moved along), for splits.</summary>
    public Mapping Slice(ulong start, ulong end)
    {
        if (start < Start || end > End || end < start) throw new ArgumentOutOfRangeException(nameof(start));
        return new Mapping(this, start, end, PgOff + (start - Start));
    }

    /// <summary>Classifies a mapping name the way perf and /proc/PID/maps spell them.</summary>
    public static MappingKind Classify(string path)
    {
        if (path.Length == 0) return MappingKind.Anonymous;
        if (path.StartsWith("//anon", StringComparison.Ordinal) || path.StartsWith("[anon", StringComparison.Ordinal)
           )
            return MappingKind.Anonymous;
        if (path == "[heap]") return MappingKind.Heap;
        if (path.StartsWith("[stack", StringComparison.Ordinal)) return MappingKind.Stack;
        if (path.StartsWith("[kernel.kallsyms]", StringComparison.Ordinal) || path.StartsWith("[guest.kernel", StringComparison.Ordinal))
            return MappingKind.Kernel;
        if (path[0] == '[') return MappingKind.Special;
        return MappingKind.File;
    }

    public override string ToString()
    {
        char r = (Prot & ProtRead) != 0 ? 'r' : '-', w = (Prot & ProtWrite) != 0 ? 'w' : '-', x = (Prot & ProtExec) != 0 ? 'x' : '-';
        return $"{Start:x}-{End:x} {r}{w}{x}p {PgOff:x8} {Path}";
    }
}
