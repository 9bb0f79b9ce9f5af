using TraceUnwind.Diagnostics;
using TraceUnwind.Processes;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Modules;

/// <summary>
/// One ELF file as the unwinder and symbolizer use it: the parsed file and, built on first use,
/// its validated SFrame section (or the reason it has none).
/// </summary>
public sealed class ElfModule
{
    private SFrameSection? _sframe;
    private bool _sframeLoaded;

    private readonly ElfFileCache? _cache;
    private readonly string? _recordedPath;
    private ElfFile? _debugFile;
    private bool _debugLoaded;

    internal ElfModule(ElfFile file, string path, ErrorTally? tally, ElfFileCache? cache = null, string? recordedPath = null)
    {
        File = file;
        Path = path;
        Tally = tally;
        _cache = cache;
        _recordedPath = recordedPath;
    }

    public ElfFile File { get; }

    /// <summary>
    /// The separate debug file (found by build id or <c>.gnu_debuglink</c>, see
    /// <see cref="ElfFileCache.FindDebugFile"/>), or null. Looked for once.
    /// </summary>
    public ElfFile? DebugFile
    {
        get
        {
            if (_debugLoaded) return _debugFile;
            _debugLoaded = true;
            if (_cache is not null && _recordedPath is not null) _debugFile = _cache.FindDebugFile(File, _recordedPath);
            return _debugFile;
        }
    }

    /// <summary>
    /// Function symbols for naming frames: the file's <c>.symtab</c>; for a stripped file the debug
    /// file's <c>.symtab</c> when there is one; else the file's <c>.dynsym</c>. Debug files keep the
    /// section addresses, so the same file-relative addresses apply.
    /// </summary>
    public ElfSymbolTable? Symbols
    {
        get
        {
            var own = File.Symbols;
            if (own is { SectionName: ".symtab" }) return own;
            return DebugFile?.Symbols is { SectionName: ".symtab" } debug ? debug : own;
        }
    }
    /// <summary>The path the file was read from (under the symfs root when one is set).</summary>
    public string Path { get; }
    private ErrorTally? Tally { get; }

    /// <summary>The error that made the SFrame data unusable, if it failed validation.</summary>
    public SFrameException? SFrameError { get; private set; }

    /// <summary>The validated SFrame section; null when the file has none or it failed validation (see <see cref="SFrameError"/>).</summary>
    public SFrameSection? SFrame
    {
        get
        {
            if (_sframeLoaded) return _sframe;
            _sframeLoaded = true;
            try
            {
                _sframe = SFrameSection.FromElf(File, validate: true);
                if (_sframe is not null && (_sframe.Arch is null || _sframe.Arch.Arch != File.Arch))
                {
                    SFrameError = new SFrameException(SFrameErrorKind.Invalid,
                        $"SFrame ABI {_sframe.Header.AbiName} does not match the ELF machine {File.Machine}", 4,
                        new InputPosition(Path));
                    _sframe = null;
                }
            }
            catch (SFrameException e)
            {
                // The kernel drops a bad section ("removing bad .sframe section"); so do we, and say so once.
                SFrameError = e;
                _sframe = null;
            }
            if (SFrameError is { } err)
                Tally?.Add("unwind.sframe-invalid", err.Position, err.Message);
            return _sframe;
        }
    }
}

/// <summary>
/// Opens the ELF files that mappings name, once each: at the recorded path, or under a
/// <c>--symfs</c> root (perf's rule: the root joined with the full path). When the mapping (the
/// capture) carries a build id and the file has one, they must match; a file that is missing,
/// unreadable, not ELF or of another build is remembered as absent and counted in the tally.
/// Not thread-safe: one per pipeline.
/// </summary>
public sealed class ElfFileCache
{
    /// <summary>Files kept open at most; the cache is dropped and rebuilt when it grows past this.</summary>
    public const int MaxEntries = 4096;

    private readonly Dictionary<string, ElfModule?> _byPath = new(StringComparer.Ordinal);
    private readonly ErrorTally? _tally;

    public ElfFileCache(string? symfs = null, ErrorTally? tally = null)
    {
        SymFs = string.IsNullOrEmpty(symfs) ? null : symfs;
        _tally = tally;
    }

    /// <summary>The root directory files are looked up under, or null for the recorded paths.</summary>
    public string? SymFs { get; }

    /// <summary>Where a recorded path is read from.</summary>
    public string Resolve(string recordedPath) =>
        SymFs is null ? recordedPath : System.IO.Path.Join(SymFs, recordedPath.TrimStart('/'));

    /// <summary>The module for a file-backed mapping, or null (no file, wrong build, not ELF).</summary>
    public ElfModule? Get(Mapping mapping)
    {
        if (!mapping.IsFileBacked) return null;
        var module = Get(mapping.FilePath);
        if (module is null) return null;
        if (mapping.BuildId is { Length: > 0 } want && module.File.BuildId is { } have && !want.AsSpan().SequenceEqual(have))
        {
            _tally?.Add("unwind.build-id-mismatch", new InputPosition(module.Path),
                $"build id {Convert.ToHexStringLower(have)} differs from the capture's {Convert.ToHexStringLower(want)}");
            return null;
        }
        return module;
    }

    /// <summary>The module at <paramref name="recordedPath"/> (resolved under the symfs root), or null.</summary>
    public ElfModule? Get(string recordedPath)
    {
        if (_byPath.TryGetValue(recordedPath, out var cached)) return cached;
        if (_byPath.Count >= MaxEntries) _byPath.Clear();
        string path = Resolve(recordedPath);
        ElfModule? module = null;
        try
        {
            if (System.IO.File.Exists(path))
                module = new ElfModule(ElfFile.Load(path), path, _tally, this, recordedPath);
            else
                _tally?.Count("unwind.file-missing", 1, TallySeverity.Notice);
        }
        catch (Exception e) when (e is TraceFormatException or IOException or UnauthorizedAccessException)
        {
            _tally?.Add("unwind.file-unreadable", new InputPosition(path), e.Message, TallySeverity.Notice);
        }
        _byPath[recordedPath] = module;
        return module;
    }

    /// <summary>Registers an already parsed file under <paramref name="recordedPath"/> (tests, tools that load files themselves).</summary>
    public ElfModule Add(string recordedPath, ElfFile file)
    {
        var m = new ElfModule(file, file.Source ?? recordedPath, _tally, this, recordedPath);
        _byPath[recordedPath] = m;
        return m;
    }

    /// <summary>
    /// The separate debug file of <paramref name="file"/> (recorded at <paramref name="recordedPath"/>),
    /// where GDB and perf look for it, all under the symfs root:
    /// <c>/usr/lib/debug/.build-id/xx/yyyy.debug</c> (build id must match), then for
    /// <c>.gnu_debuglink</c> name N: <c>DIR/N</c>, <c>DIR/.debug/N</c>, <c>/usr/lib/debug/DIR/N</c>
    /// (build id must match when both have one, else the link's CRC-32 must).
    /// </summary>
    public ElfFile? FindDebugFile(ElfFile file, string recordedPath)
    {
        byte[]? id = file.BuildId;
        if (id is { Length: > 1 })
        {
            string hex = Convert.ToHexStringLower(id);
            var candidate = TryLoadQuiet(Resolve($"/usr/lib/debug/.build-id/{hex[..2]}/{hex[2..]}.debug"));
            if (candidate?.BuildId is { } cid && cid.AsSpan().SequenceEqual(id)) return candidate;
        }
        if (!file.TryGetDebugLink(out string name, out uint crc) || name.Contains('/')) return null;
        string dir = System.IO.Path.GetDirectoryName(recordedPath) ?? "/";
        foreach (var p in new[] { System.IO.Path.Join(dir, name), System.IO.Path.Join(dir, ".debug", name), System.IO.Path.Join("/usr/lib/debug", dir, name) })
        {
            if (p == recordedPath) continue;
            string resolved = Resolve(p);
            var candidate = TryLoadQuiet(resolved);
            if (candidate is null) continue;
            bool ok = id is not null && candidate.BuildId is { } cid
                ? cid.AsSpan().SequenceEqual(id)
                : Crc32.Compute(candidate.Data) == crc;
            if (ok) return candidate;
            _tally?.Add("unwind.debug-file-mismatch", new InputPosition(resolved), "the debug file belongs to another build", TallySeverity.Notice);
        }
        return null;
    }

    private static ElfFile? TryLoadQuiet(string path)
    {
        try { return System.IO.File.Exists(path) ? ElfFile.Load(path) : null; }
        catch (Exception e) when (e is TraceFormatException or IOException or UnauthorizedAccessException) { return null; }
    }
}

/// <summary>CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), what <c>.gnu_debuglink</c> stores (binutils bfd_calc_gnu_debuglink_crc32).</summary>
internal static class Crc32
{
    private static readonly uint[] Table = Build();

    private static uint[] Build()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = 0xffffffffu;
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xff] ^ (crc >> 8);
        return ~crc;
    }
}
