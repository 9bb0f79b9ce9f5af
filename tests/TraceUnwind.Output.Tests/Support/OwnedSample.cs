using TraceUnwind.Model;

namespace TraceUnwind.Output.Tests.Support;

/// <summary>A <see cref="Sample"/> kept beyond the sink call (tests only).</summary>
internal sealed class OwnedSample
{
    public long Index;
    public ulong Time;
    public int Pid = -1, Tid = -1, Cpu = -1;
    public ulong Period;
    public ulong Ip;
    public string Comm = "";
    public string Event = "";
    public Frame[] Frames = [];
    public SampleKind Kind;
    public ulong Cookie;

    public void SendTo(ISampleSink sink)
    {
        var s = new Sample
        {
            Index = Index, Time = Time, Pid = Pid, Tid = Tid, Cpu = Cpu, Period = Period, Ip = Ip,
            Comm = Comm, Event = Event, Frames = Frames, Kind = Kind, Cookie = Cookie,
        };
        sink.OnSample(s);
    }

    public static void SendAll(IEnumerable<OwnedSample> samples, ISampleSink sink, bool complete = true)
    {
        foreach (var s in samples) s.SendTo(sink);
        if (complete) sink.Complete();
    }
}

/// <summary>A sink that keeps copies (to compare what a writer received with what it wrote).</summary>
internal sealed class CollectingSink : ISampleSink
{
    public List<OwnedSample> Samples { get; } = [];
    public void OnSample(in Sample s) => Samples.Add(new OwnedSample
    {
        Index = s.Index, Time = s.Time, Pid = s.Pid, Tid = s.Tid, Cpu = s.Cpu, Period = s.Period, Ip = s.Ip,
        Comm = s.Comm, Event = s.Event, Frames = s.Frames.ToArray(), Kind = s.Kind, Cookie = s.Cookie,
    });
    public void Flush() { }
    public void Complete() { }
}
