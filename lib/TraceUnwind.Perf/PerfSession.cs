using TraceUnwind.Unwinding;

namespace TraceUnwind.Perf;

/// <summary>A build id from the BUILD_ID feature or a HEADER_BUILD_ID record.</summary>
public sealed record PerfBuildId(int Pid, ushort Misc, byte[] BuildId, string FileName)
{
    public string BuildIdHex => Convert.ToHexStringLower(BuildId);
    public override string ToString() => $"{BuildIdHex} {FileName}";
}

/// <summary>PERF_RECORD_TIME_CONV: how to convert TSC values to perf time.</summary>
public readonly record struct PerfTimeConv(ulong TimeShift, ulong TimeMult, ulong TimeZero, ulong TimeCycles, ulong TimeMask,
    bool CapUserTimeZero, bool CapUserTimeShort);

/// <summary>
/// What a perf.data input says about itself: mode, byte order, events (attrs, ids, names) and
/// the feature sections a reader needs. Filled while the input is read: in file mode the attrs
/// and (on a seekable stream) the features are known before the first record; in pipe mode they
/// arrive as HEADER_ATTR / HEADER_FEATURE records; in file mode on a non-seekable stream the
/// features come after the data (<see cref="FeaturesComplete"/> turns true then).
/// </summary>
public sealed class PerfSession
{
    private readonly List<PerfEvent> _events = new();
    private readonly Dictionary<ulong, PerfEvent> _byId = new();
    private readonly Dictionary<PerfFeature, byte[]> _rawFeatures = new();
    private readonly List<PerfBuildId> _buildIds = new();

    internal PerfSession(string sourceName) => SourceName = sourceName;

    public string SourceName { get; }
    /// <summary>True for a pipe-mode stream (<c>perf record -o -</c>: 16-byte header, no sections).</summary>
    public bool IsPipeMode { get; internal set; }
    /// <summary>True for a <c>2ELIFREP</c> input (recorded on a big-endian machine).</summary>
    public bool IsBigEndian { get; internal set; }
    /// <summary>File mode: the data section (offset, size); pipe mode: 16 and -1.</summary>
    public long DataOffset { get; internal set; }
    public long DataSize { get; internal set; }
    /// <summary>File mode: the 256-bit feature bitmap (<c>adds_features</c>) as four words.</summary>
    public ulong[] FeatureBitmap { get; } = new ulong[4];

    public IReadOnlyList<PerfEvent> Events => _events;

    /// <summary><c>uname -m</c> of the recording machine (HEADER_ARCH), null if not known (yet).</summary>
    public string? Arch { get; internal set; }
    public string? Hostname { get; internal set; }
    public string? OsRelease { get; internal set; }
    /// <summary>The perf version that recorded (HEADER_VERSION), e.g. <c>6.1.187</c>.</summary>
    public string? PerfVersion { get; internal set; }
    public string? CpuDesc { get; internal set; }
    public string? CpuId { get; internal set; }
    /// <summary>HEADER_NRCPUS: <c>nr_cpus_avail</c> (max present) and <c>nr_cpus_online</c>; -1 if unknown.</summary>
    public int NrCpusAvailable { get; internal set; } = -1;
    public int NrCpusOnline { get; internal set; } = -1;
    /// <summary>HEADER_CMDLINE: perf's argv (argv[0] is the full perf path).</summary>
    public IReadOnlyList<string> Cmdline { get; internal set; } = Array.Empty<string>();
    public IReadOnlyList<PerfBuildId> BuildIds => _buildIds;
    /// <summary>HEADER_SAMPLE_TIME: first and last sample time (0 if unknown).</summary>
    public ulong FirstSampleTime { get; internal set; }
    public ulong LastSampleTime { get; internal set; }
    /// <summary>HEADER_COMPRESSED: type (1 = zstd) and level, or 0.</summary>
    public uint CompressionType { get; internal set; }
    public uint CompressionLevel { get; internal set; }
    public PerfTimeConv? TimeConv { get; internal set; }
    /// <summary>True once every feature section the input has was read.</summary>
    public bool FeaturesComplete { get; internal set; }

    /// <summary>
    /// Feature payloads as read (input byte order), for writers that copy them
    /// (<see cref="PerfDataWriter.SetRawFeature"/>). Payloads over <see cref="MaxRawFeatureBytes"/> are not kept.
    /// </summary>
    public IReadOnlyDictionary<PerfFeature, byte[]> RawFeatures => _rawFeatures;

    /// <summary>Largest feature payload kept in <see cref="RawFeatures"/> (and parsed).</summary>
    public const int MaxRawFeatureBytes = 16 << 20;

    /// <summary>The unwinder's name for <see cref="Arch"/>.</summary>
    public UnwindArch UnwindArch => UnwindArchNames.FromUname(Arch);

    /// <summary>The event with sample id <paramref name="id"/>, or null.</summary>
    public PerfEvent? FindEventById(ulong id) => _byId.GetValueOrDefault(id);

    /// <summary>True when records name their event by an id (more than one event, and ids in the layout).</summary>
    internal bool NeedsIdLookup => _events.Count > 1;

    internal PerfEvent AddEvent(PerfEventAttr attr, ulong[] ids)
    {
        var ev = new PerfEvent(_events.Count, attr, ids);
        _events.Add(ev);
        foreach (ulong id in ids) _byId.TryAdd(id, ev);
        return ev;
    }

    internal void AddId(PerfEvent ev, ulong id)
    {
        if (_byId.TryAdd(id, ev) && Array.IndexOf(ev.Ids, id) < 0)
            ev.Ids = [.. ev.Ids, id];
    }

    internal void SetRawFeature(PerfFeature f, byte[] payload) => _rawFeatures[f] = payload;

    internal void AddBuildId(PerfBuildId b) => _buildIds.Add(b);

    /// <summary>True when feature <paramref name="f"/>'s bit is set in the file header.</summary>
    public bool HasFeatureBit(int f) => f is >= 0 and < 256 && (FeatureBitmap[f >> 6] & (1UL << (f & 63))) != 0;
}
