using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Perf;
using TraceUnwind.Processes;

namespace TraceUnwind.Cli;

/// <summary>
/// <c>rewrite --perf FILE</c>: the MMAP/MMAP2/COMM(exec)/FORK/EXIT records of a perf.data recorded
/// alongside the trace (<c>perf record -a -e dummy</c> is enough), read by the one perf reader and fed
/// in time order into the ftrace front end's maps timeline.
/// </summary>
internal static class PerfSideband
{
    public static async Task<IMapsTimeline> LoadAsync(string path, ErrorTally tally, CancellationToken ct)
    {
        var timeline = new MapsTimeline();
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
        var reader = new PerfRecordReader(stream, path, new PerfReadOptions(), tally);
        await reader.RunAsync(new Handler(timeline), ct).ConfigureAwait(false);
        return timeline;
    }

    private sealed class Handler(MapsTimeline timeline) : PerfRecordHandler
    {
        private readonly Dictionary<string, string> _paths = new(StringComparer.Ordinal);

        public override void OnMmap(in PerfMmap m)
        {
            if (m.Pid < 0 || m.Length == 0) return; // kernel maps: ftrace user frames never need them
            string path = System.Text.Encoding.UTF8.GetString(m.FileName);
            if (!_paths.TryGetValue(path, out var interned)) _paths[path] = interned = path;
            ulong end = m.Length > ulong.MaxValue - m.Address ? ulong.MaxValue : m.Address + m.Length;
            byte[]? buildId = m.HasBuildId && !m.BuildId.IsEmpty ? m.BuildId.ToArray() : null;
            timeline.AddThread(m.Pid, m.Tid);
            timeline.Mmap(m.Pid, m.Record.SampleId.Time,
                new Mapping(m.Address, end, m.PgOff, interned, m.Prot, null, buildId, m.Inode, m.Major, m.Minor));
        }

        public override void OnComm(in PerfComm c)
        {
            timeline.AddThread(c.Pid, c.Tid);
            if (c.IsExec) timeline.Exec(c.Pid, c.Record.SampleId.Time);
        }

        public override void OnFork(in PerfTaskEvent e) => timeline.Fork(e.Pid, e.ParentPid, e.Tid, e.ParentTid, e.Time);

        public override void OnExit(in PerfTaskEvent e) => timeline.Exit(e.Pid, e.Tid, e.Time);
    }
}
