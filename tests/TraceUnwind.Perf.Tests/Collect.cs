using TraceUnwind.Diagnostics;
using TraceUnwind.Model;
using TraceUnwind.Processes;

namespace TraceUnwind.Perf.Tests;

/// <summary>A frame copied out of a sample.</summary>
public sealed record CopiedFrame(ulong Address, FrameKind Kind, FrameFlags Flags, Mapping? Mapping);

/// <summary>A sample copied out of the view (tests keep them).</summary>
public sealed record CopiedSample(long Index, ulong Time, int Pid, int Tid, int Cpu, ulong Period, ulong Ip, string Comm, string Event,
    SampleKind Kind, ulong Cookie, List<CopiedFrame> Frames);

/// <summary>Collects every sample.</summary>
public sealed class CollectingSink : ISampleSink
{
    public List<CopiedSample> Samples { get; } = new();
    public int Flushes { get; private set; }
    public int Completes { get; private set; }

    public void OnSample(in Sample s)
    {
        var frames = new List<CopiedFrame>(s.Frames.Length);
        foreach (var f in s.Frames) frames.Add(new CopiedFrame(f.Address, f.Kind, f.Flags, f.Mapping));
        Samples.Add(new CopiedSample(s.Index, s.Time, s.Pid, s.Tid, s.Cpu, s.Period, s.Ip, s.Comm, s.Event, s.Kind, s.Cookie, frames));
    }

    public void Flush() => Flushes++;
    public void Complete() => Completes++;
}

/// <summary>Counts samples and frames without keeping them (allocation-free).</summary>
public sealed class CountingSink : ISampleSink
{
    public long Samples;
    public long Frames;
    public ulong Checksum;

    public void OnSample(in Sample s)
    {
        Samples++;
        Frames += s.Frames.Length;
        foreach (var f in s.Frames) Checksum = Checksum * 31 + f.Address + (f.Mapping is null ? 0UL : f.FileOffset);
        Checksum += s.Time + (ulong)s.Comm.Length;
    }

    public void Flush() { }
    public void Complete() { }
}

public static class Run
{
    /// <summary>Reads <paramref name="data"/> through <see cref="PerfSampleSource"/> and collects the samples.</summary>
    public static (List<CopiedSample> Samples, ErrorTally Tally, PerfSession Session) Samples(Stream data, string name, PerfReadOptions? options = null)
    {
        var tally = new ErrorTally();
        var sink = new CollectingSink();
        var src = new PerfSampleSource(data, name, options ?? new PerfReadOptions(), tally);
        src.RunAsync(sink, CancellationToken.None).GetAwaiter().GetResult();
        return (sink.Samples, tally, src.Session!);
    }

    public static (List<CopiedSample> Samples, ErrorTally Tally, PerfSession Session) File(string path, PerfReadOptions? options = null)
    {
        using var fs = System.IO.File.OpenRead(path);
        return Samples(fs, path, options);
    }
}
