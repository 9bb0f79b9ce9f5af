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

    internal ElfModule(ElfFile file, string path, ErrorTally? tally)
    {
        File = file;
        Path = path;
        Tally = tally;
    }

    public ElfFile File { get; }
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
                module = new ElfModule(ElfFile.Load(path), path, _tally);
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
        var m = new ElfModule(file, file.Source ?? recordedPath, _tally);
        _byPath[recordedPath] = m;
        return m;
    }
}
