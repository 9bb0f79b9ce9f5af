using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using TraceUnwind.Model;
using TraceUnwind.Output.Internal;
using TraceUnwind.Symbols;

namespace TraceUnwind.Output;

/// <summary>One speedscope profile per thread or per process.</summary>
public enum SpeedscopeGrouping : byte
{
    /// <summary>A profile per thread, named <c>comm pid/tid</c> (default).</summary>
    Thread,
    /// <summary>A profile per process, named <c>comm pid</c>.</summary>
    Process,
}

/// <summary>Options of <see cref="SpeedscopeWriter"/>.</summary>
public sealed record SpeedscopeOptions
{
    public SpeedscopeGrouping GroupBy { get; init; } = SpeedscopeGrouping.Thread;

    /// <summary>Samples (default, unit <c>none</c>) or periods (unit <c>nanoseconds</c> when every sampled event is
    /// <c>cpu-clock</c> or <c>task-clock</c>, whose period is nanoseconds; <c>none</c> otherwise).</summary>
    public SampleWeight Weight { get; init; } = SampleWeight.Samples;

    /// <summary>
    /// Keep the samples in time order (speedscope's "Time Order" view) instead of one entry per distinct
    /// stack. Runs of the same stack are merged, but memory then grows with the number of stack changes,
    /// not only with the distinct stacks. Off by default.
    /// </summary>
    public bool PreserveTimeOrder { get; init; }

    /// <summary>The profile group's name (the file's <c>name</c>); null = <c>traceunwind</c>.</summary>
    public string? Name { get; init; }
}

/// <summary>
/// speedscope's JSON file format (https://www.speedscope.app/file-format-schema.json, src/lib/file-format-spec.ts):
/// <code>
/// {"$schema":"https://www.speedscope.app/file-format-schema.json",
///  "shared":{"frames":[{"name":"recurse","file":"/capture/bin/recur"}, ...]},
///  "profiles":[{"type":"sampled","name":"recur 258/258","unit":"none","startValue":0,"endValue":W,
///               "samples":[[0,1,2], ...],"weights":[5, ...]}, ...],
///  "name":"traceunwind","activeProfileIndex":I,"exporter":"traceunwind"}
/// </code>
/// A sample's stack lists frame indexes outermost first (root to leaf, as speedscope expects).
/// A frame is its <see cref="FrameNamer.WriteName"/> name plus its dso as <c>file</c> (<see cref="FrameNamer.WriteModule"/>),
/// so <c>memcpy</c> in two libraries stays two frames. By default each profile lists every distinct stack
/// once with its total weight (sorted by frame ids), so memory is bounded by distinct frames and stacks;
/// <see cref="SpeedscopeOptions.PreserveTimeOrder"/> keeps time order instead. Profiles are ordered by
/// pid then tid; <c>activeProfileIndex</c> is the heaviest. Cookie frames and deferred-callchain records
/// are skipped, as in fold. Everything is written by <see cref="Complete"/>; <see cref="Flush"/> writes nothing.
/// </summary>
public sealed class SpeedscopeWriter : ISampleSink
{
    private readonly Utf8Output _out;
    private readonly SpeedscopeOptions _options;
    private readonly FrameNamer _namer;
    private readonly FrameNameCache _frames;
    private readonly StackTable _stacks = new(); // [profile, frames...] when aggregated; [frames...] in time order
    private readonly Dictionary<long, Profile> _profiles = new();
    private readonly List<Profile> _profileList = new();
    private int[] _sequence = new int[256];
    private bool _allTimeEvents = true, _completed;

    private sealed class Profile(int index, int pid, int tid)
    {
        public readonly int Index = index, Pid = pid, Tid = tid;
        public string Comm = "";
        public ulong TotalWeight;
        public List<int>? Order;      // time order: stack entries
        public List<ulong>? Weights;  // time order: weights
    }

    /// <param name="output">Receives UTF-8 JSON; not closed by the writer.</param>
    /// <param name="symbolizer">Names frames; null = <c>path[+0xOFF]</c> and addresses.</param>
    /// <param name="options">null = defaults.</param>
    public SpeedscopeWriter(Stream output, ISymbolizer? symbolizer = null, SpeedscopeOptions? options = null)
    {
        _out = new Utf8Output(output);
        _options = options ?? new SpeedscopeOptions();
        _namer = new FrameNamer(symbolizer);
        _frames = new FrameNameCache(Render);
    }

    public long Samples { get; private set; }

    // Key text: name, NUL, file.
    private void Render(in Frame frame, ArrayBufferWriter<byte> destination)
    {
        _namer.WriteName(destination, frame);
        destination.Write("\0"u8);
        _namer.WriteModule(destination, frame);
    }

    public void OnSample(in Sample sample)
    {
        if (_completed) throw new InvalidOperationException("the writer is complete");
        if (sample.Kind != SampleKind.Event) return;
        bool byThread = _options.GroupBy == SpeedscopeGrouping.Thread;
        int pid = sample.Pid, tid = byThread ? sample.Tid : -1;
        long key = (long)pid << 32 | (uint)tid;
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_profiles, key, out bool exists);
        if (!exists)
        {
            slot = new Profile(_profileList.Count, pid, tid);
            if (_options.PreserveTimeOrder)
            {
                slot.Order = new List<int>();
                slot.Weights = new List<ulong>();
            }
            _profileList.Add(slot);
        }
        var p = slot!;
        if (!ReferenceEquals(p.Comm, sample.Comm)) p.Comm = sample.Comm ?? "";
        if (_allTimeEvents && sample.Event is not ("cpu-clock" or "task-clock")) _allTimeEvents = false;

        var frames = sample.Frames;
        if (_sequence.Length < frames.Length + 1) _sequence = new int[Math.Max(frames.Length + 1, _sequence.Length * 2)];
        int n = 0;
        if (!_options.PreserveTimeOrder) _sequence[n++] = p.Index;
        for (int i = frames.Length - 1; i >= 0; i--)
            if (frames[i].Kind != FrameKind.DeferredCookie) _sequence[n++] = _frames.GetId(frames[i]);
        int entry = _stacks.Add(_sequence.AsSpan(0, n), sample.Period);
        ulong w = _options.Weight == SampleWeight.Period ? sample.Period : 1;
        p.TotalWeight += w;
        if (p.Order is { } order)
        {
            if (order.Count > 0 && order[^1] == entry) p.Weights![^1] += w;
            else
            {
                order.Add(entry);
                p.Weights!.Add(w);
            }
        }
        Samples++;
    }

    /// <summary>Nothing is complete before the end: writes nothing (and flushes the stream).</summary>
    public void Flush() => _out.Flush();

    /// <summary>Writes the whole file and flushes. Later calls do nothing.</summary>
    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        using var json = new Utf8JsonWriter(_out, JsonText.Options);
        json.WriteStartObject();
        json.WriteString("$schema"u8, "https://www.speedscope.app/file-format-schema.json"u8);
        json.WriteStartObject("shared"u8);
        json.WriteStartArray("frames"u8);
        for (int id = 0; id < _frames.Names.Count; id++)
        {
            var key = _frames.Names[id];
            int nul = key.IndexOf((byte)0);
            json.WriteStartObject();
            json.WriteString("name"u8, key[..nul]);
            json.WriteString("file"u8, key[(nul + 1)..]);
            json.WriteEndObject();
            Drain(json);
        }
        json.WriteEndArray();
        json.WriteEndObject();

        var profiles = _profileList.OrderBy(p => p.Pid).ThenBy(p => p.Tid).ToList();
        // Aggregated: entries grouped by profile (the sequence's first int), sorted by their frame ids.
        var byProfile = new List<int>[_profileList.Count];
        if (!_options.PreserveTimeOrder)
        {
            for (int i = 0; i < byProfile.Length; i++) byProfile[i] = new List<int>();
            for (int e = 0; e < _stacks.Count; e++) byProfile[_stacks[e][0]].Add(e);
            foreach (var list in byProfile) list.Sort((a, b) => _stacks[a][1..].SequenceCompareTo(_stacks[b][1..]));
        }
        string unit = _options.Weight == SampleWeight.Period && _allTimeEvents && Samples > 0 ? "nanoseconds" : "none";
        json.WriteStartArray("profiles"u8);
        int active = 0;
        for (int i = 0; i < profiles.Count; i++)
        {
            var p = profiles[i];
            if (p.TotalWeight > profiles[active].TotalWeight) active = i;
            json.WriteStartObject();
            json.WriteString("type"u8, "sampled"u8);
            json.WriteString("name"u8, p.Tid >= 0 || _options.GroupBy == SpeedscopeGrouping.Thread ? $"{p.Comm} {p.Pid}/{p.Tid}" : $"{p.Comm} {p.Pid}");
            json.WriteString("unit"u8, unit);
            json.WriteNumber("startValue"u8, 0);
            json.WriteNumber("endValue"u8, p.TotalWeight);
            IReadOnlyList<int> entries = p.Order ?? (IReadOnlyList<int>)byProfile[p.Index];
            int skip = p.Order is null ? 1 : 0;
            json.WriteStartArray("samples"u8);
            foreach (int e in entries)
            {
                json.WriteStartArray();
                foreach (int f in _stacks[e][skip..]) json.WriteNumberValue(f);
                json.WriteEndArray();
                Drain(json);
            }
            json.WriteEndArray();
            json.WriteStartArray("weights"u8);
            for (int k = 0; k < entries.Count; k++)
            {
                ulong w = p.Weights is { } ws ? ws[k]
                    : _options.Weight == SampleWeight.Period ? _stacks.Period(entries[k]) : (ulong)_stacks.Samples(entries[k]);
                json.WriteNumberValue(w);
                Drain(json);
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteString("name"u8, _options.Name ?? "traceunwind");
        json.WriteNumber("activeProfileIndex"u8, active);
        json.WriteString("exporter"u8, "traceunwind"u8);
        json.WriteEndObject();
        json.Flush();
        _out.Flush();
        _out.Release();
    }

    private void Drain(Utf8JsonWriter json)
    {
        if (json.BytesPending < Utf8Output.DefaultDrainThreshold) return;
        json.Flush();
        _out.DrainIfOver();
    }
}
