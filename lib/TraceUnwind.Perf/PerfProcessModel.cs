using TraceUnwind.Model;
using TraceUnwind.Processes;

namespace TraceUnwind.Perf;

/// <summary>
/// Processes and their address spaces built from MMAP/MMAP2/COMM/FORK/EXIT records in time order
/// (perf's machine/thread/maps model, on Core's <see cref="ProcessTable"/>): threads share their
/// process's maps, a fork copies them, a COMM with the exec flag replaces them, pid -1 mappings
/// are the kernel's. Every mapping is inserted, data mappings included (perf records those in
/// <c>--call-graph dwarf</c> mode); <see cref="AddressSpace"/> trims overlaps as the kernel's VMA
/// tree would. Usable on its own: the ftrace front end feeds it a perf.data recorded alongside.
///
/// One perf compatibility: perf does not drop a process's maps at exec (<c>__thread__set_comm</c>
/// only flushes the unwind cache); the new image's MMAP2s overwrite what they overlap. Samples
/// taken inside execve after the COMM exec record still carry the old image's user return
/// addresses (the user registers are those of the syscall entry), and perf names them from the
/// old maps. So an address the new maps do not hold is looked up in the maps from before the
/// exec (<see cref="FindUser"/>): the same answer as perf's one merged map tree.
/// </summary>
public sealed class PerfProcessModel
{
    /// <summary>Comm shown for samples without a TID.</summary>
    public const string UnknownComm = ":-1";

    private readonly Dictionary<int, AddressSpace> _preExec = new();
    private readonly Queue<int> _preExecOrder = new();
    private readonly int _maxPreExec;

    public PerfProcessModel(int maxExitedProcesses = 4096, StringPool? strings = null)
    {
        Table = new ProcessTable(maxExitedProcesses);
        Strings = strings ?? new StringPool();
        _maxPreExec = Math.Max(16, maxExitedProcesses);
    }

    public ProcessTable Table { get; }
    /// <summary>Interns comms and paths (no allocation for a name seen before).</summary>
    public StringPool Strings { get; }

    public void OnMmap(in PerfMmap m)
    {
        if (m.Length == 0) return;
        ulong end = m.Length > ulong.MaxValue - m.Address ? ulong.MaxValue : m.Address + m.Length;
        string path = Strings.Intern(m.FileName);
        MappingKind? kind = m.Pid == -1 ? MappingKind.Kernel : null;
        byte[]? buildId = m.HasBuildId && !m.BuildId.IsEmpty ? m.BuildId.ToArray() : null;
        var mapping = new Mapping(m.Address, end, m.PgOff, path, m.Prot, kind, buildId, m.Inode, m.Major, m.Minor);
        if (m.Pid >= 0 && m.Tid >= 0) Table.AddThread(m.Pid, m.Tid);
        Table.Mmap(m.Pid, mapping);
    }

    public void OnComm(in PerfComm c)
    {
        string comm = Strings.Intern(c.Comm);
        if (!c.IsExec) { Table.SetComm(c.Pid, c.Tid, comm); return; }
        var before = Table.FindProcess(c.Pid)?.Maps;
        Table.Exec(c.Pid, c.Tid, comm);
        if (before is null || before.Count == 0) return;
        // Keep the old image's maps as a fallback; an older fallback stays under it.
        if (_preExec.TryGetValue(c.Pid, out var older))
        {
            var merged = older.Clone();
            foreach (var m in before.Mappings) merged.Insert(m);
            before = merged;
        }
        else
        {
            _preExecOrder.Enqueue(c.Pid);
            while (_preExecOrder.Count > _maxPreExec) _preExec.Remove(_preExecOrder.Dequeue());
        }
        _preExec[c.Pid] = before;
    }

    public void OnFork(in PerfTaskEvent f)
    {
        if (f.Pid != f.ParentPid) _preExec.Remove(f.Pid); // a new process (perhaps a reused pid)
        Table.Fork(f.Pid, f.ParentPid, f.Tid, f.ParentTid);
    }

    public void OnExit(in PerfTaskEvent e) => Table.Exit(e.Pid, e.Tid);

    /// <summary>
    /// Makes sure a thread seen in a sample has a process entry (perf's
    /// <c>machine__findnew_thread</c>), so its comm is found without building a string each time.
    /// </summary>
    public void NoteThread(int pid, int tid)
    {
        if (pid < 0 || tid < 0) return;
        if (Table.ProcessOfThread(tid) != pid) Table.AddThread(pid, tid);
    }

    /// <summary>The thread's comm now (<see cref="UnknownComm"/> without a tid).</summary>
    public string CommOf(int pid, int tid) => tid < 0 && pid < 0 ? UnknownComm : Table.CommOf(pid, tid);

    /// <summary>The address space of process <paramref name="pid"/>, or null.</summary>
    public AddressSpace? MapsOf(int pid) => pid >= 0 ? Table.FindProcess(pid)?.Maps : null;

    /// <summary>
    /// The user mapping holding <paramref name="ip"/> in process <paramref name="pid"/>: its current
    /// maps, else the maps it had before its last exec (see the class remarks).
    /// </summary>
    public Mapping? FindUser(int pid, ulong ip) => UserMaps(pid).Find(ip);

    /// <summary>The address spaces to name a process's user addresses with (looked up once per sample).</summary>
    public UserMaps UserMaps(int pid)
    {
        if (pid < 0) return default;
        var p = Table.FindProcess(pid);
        if (p is null) return default;
        AddressSpace? old = null;
        if (p.ExecCount > 0) _preExec.TryGetValue(pid, out old);
        return new UserMaps(p.Maps, old);
    }

    /// <summary>The kernel image or module holding <paramref name="ip"/>.</summary>
    public Mapping? FindKernel(ulong ip) => Table.KernelMaps.Find(ip);
}

/// <summary>A process's current maps and, after an exec, the maps it had before (perf's merged view; see <see cref="PerfProcessModel"/>).</summary>
public readonly struct UserMaps(AddressSpace? current, AddressSpace? beforeExec)
{
    public AddressSpace? Current { get; } = current;
    public AddressSpace? BeforeExec { get; } = beforeExec;

    /// <summary>The mapping holding <paramref name="ip"/>: the current maps first, then the pre-exec ones.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public Mapping? Find(ulong ip) => Current?.Find(ip) ?? BeforeExec?.Find(ip);
}
