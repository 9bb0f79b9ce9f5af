using TraceUnwind.Diagnostics;
using TraceUnwind.Ftrace.Maps;
using TraceUnwind.Perf;
using TraceUnwind.Processes;

namespace TraceUnwind.Cli;

/// <summary>
/// <c>rewrite --perf FILE</c>: the MMAP/MMAP2/COMM(exec)/FORK/EXIT records of a perf.data recorded
/// alongside the trace (<c>perf record -a -e dummy</c> is enough), read by the one perf reader and fed
/// in time order into the ftrace front end's maps timeline.
/// <para>
/// perf's side-band does not hold every VMA: without <c>-d</c> only executable mappings are recorded,
/// and even with it the brk heap, munmap and mprotect splits are missing. The kernel's <c>find_vma</c>
/// answer for an address in no recorded mapping (the first mapping above it) would then be an invented
/// one: a garbage return address in <c>[heap]</c> or in a read-only segment of a file became
/// <c>libc.so.6[+0xffffd6b1362e8047]</c> where the kernel prints raw or the file's own offset. So the
/// lookups answer only with a mapping that contains the address (<see cref="ContainingOnly"/>); an
/// address in none stays raw.
/// </para>
/// </summary>
internal static class PerfSideband
{
    public static async Task<IMapsTimeline> LoadAsync(string path, ErrorTally tally, CancellationToken ct)
    {
        var timeline = new MapsTimeline();
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
        var reader = new PerfRecordReader(stream, path, new PerfReadOptions(), tally);
        var handler = new Handler(timeline);
        await reader.RunAsync(handler, ct).ConfigureAwait(false);
        if (handler.Untimed > 0)
            tally.Add("perf.sideband.untimed", handler.Untimed, new InputPosition(path, handler.FirstUntimedOffset),
                "MMAP/COMM exec records without a time (the events lack sample_id_all or TIME): they count as at the start of the trace",
                TallySeverity.Notice);
        return new ContainingOnly(timeline);
    }

    /// <summary>Answers only with a mapping that contains the address (see the class remarks).</summary>
    internal sealed class ContainingOnly(IMapsTimeline inner) : IMapsTimeline
    {
        public IMapsTimeline Inner { get; } = inner;

        public int ProcessOf(int tid) => Inner.ProcessOf(tid);

        public Mapping? FindVma(int tgid, ulong timeNs, ulong ip) =>
            Inner.FindVma(tgid, timeNs, ip) is { } m && m.Contains(ip) ? m : null;
    }

    private sealed class Handler(MapsTimeline timeline) : PerfRecordHandler
    {
        private readonly Dictionary<string, string> _paths = new(StringComparer.Ordinal);

        public long Untimed { get; private set; }
        public long FirstUntimedOffset { get; private set; } = -1;

        private void NoteUntimed(long offset)
        {
            if (Untimed++ == 0) FirstUntimedOffset = offset;
        }

        public override void OnMmap(in PerfMmap m)
        {
            if (m.Pid < 0 || m.Length == 0) return; // kernel maps: ftrace user frames never need them
            string path = System.Text.Encoding.UTF8.GetString(m.FileName);
            if (!_paths.TryGetValue(path, out var interned)) _paths[path] = interned = path;
            ulong end = m.Length > ulong.MaxValue - m.Address ? ulong.MaxValue : m.Address + m.Length;
            byte[]? buildId = m.HasBuildId && !m.BuildId.IsEmpty ? m.BuildId.ToArray() : null;
            if (!m.Record.SampleId.HasTime) NoteUntimed(m.Record.FileOffset);
            timeline.AddThread(m.Pid, m.Tid);
            timeline.Mmap(m.Pid, m.Record.SampleId.Time,
                new Mapping(m.Address, end, m.PgOff, interned, m.Prot, null, buildId, m.Inode, m.Major, m.Minor));
        }

        public override void OnComm(in PerfComm c)
        {
            timeline.AddThread(c.Pid, c.Tid);
            if (!c.IsExec) return;
            if (!c.Record.SampleId.HasTime) NoteUntimed(c.Record.FileOffset);
            timeline.Exec(c.Pid, c.Record.SampleId.Time);
        }

        public override void OnFork(in PerfTaskEvent e) => timeline.Fork(e.Pid, e.ParentPid, e.Tid, e.ParentTid, e.Time);

        public override void OnExit(in PerfTaskEvent e) => timeline.Exit(e.Pid, e.Tid, e.Time);
    }
}
