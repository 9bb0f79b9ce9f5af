namespace TraceUnwind.Processes;

/// <summary>One process (thread group): its address space and the comm of its leader.</summary>
public sealed class Process
{
    internal Process(int pid, AddressSpace maps, string comm)
    {
        Pid = pid;
        Maps = maps;
        Comm = comm;
    }

    /// <summary>Thread group id.</summary>
    public int Pid { get; }
    /// <summary>The mappings; replaced (not cleared in place) on exec so a forked sibling keeps its own.</summary>
    public AddressSpace Maps { get; internal set; }
    /// <summary>The leader's comm (<c>:PID</c> until a COMM record or snapshot names it).</summary>
    public string Comm { get; internal set; }
    /// <summary>True once the leader exited; the entry stays until the table needs the room.</summary>
    public bool Exited { get; internal set; }
    /// <summary>How many execs this process went through (0 = the image it was forked with).</summary>
    public int ExecCount { get; internal set; }
}

/// <summary>
/// Processes and threads of a trace, updated in time order from MMAP/MMAP2/COMM/FORK/EXIT
/// (perf) or maps snapshots (ftrace): threads share their process's maps; a fork copies
/// them; an exec replaces them. Exited processes are kept (samples can still name them
/// after their EXIT in time order) but only up to a bound, so an endless stream of
/// short-lived processes does not grow memory without limit.
/// </summary>
public sealed class ProcessTable
{
    private readonly Dictionary<int, Process> _processes = new();
    private readonly Dictionary<int, int> _threadToProcess = new();
    private readonly Dictionary<int, string> _threadComms = new();
    private readonly Queue<(int Pid, Process P)> _exitedProcesses = new();
    private readonly Queue<int> _exitedThreads = new();
    private readonly int _maxExited;

    /// <param name="maxExited">How many exited processes and threads are remembered before the oldest are forgotten.</param>
    public ProcessTable(int maxExited = 4096) => _maxExited = Math.Max(1, maxExited);

    /// <summary>Kernel image and modules (perf MMAPs with pid -1).</summary>
    public AddressSpace KernelMaps { get; } = new();

    public int ProcessCount => _processes.Count;

    public Process GetOrAddProcess(int pid)
    {
        if (!_processes.TryGetValue(pid, out var p))
        {
            p = new Process(pid, new AddressSpace(), $":{pid}");
            _processes.Add(pid, p);
        }
        return p;
    }

    public Process? FindProcess(int pid) => _processes.GetValueOrDefault(pid);

    /// <summary>The process of thread <paramref name="tid"/>, or -1 when the trace never said.</summary>
    public int ProcessOfThread(int tid)
    {
        if (_threadToProcess.TryGetValue(tid, out int pid)) return pid;
        return _processes.ContainsKey(tid) ? tid : -1;
    }

    /// <summary>Records that <paramref name="tid"/> belongs to <paramref name="pid"/>.</summary>
    public void AddThread(int pid, int tid)
    {
        if (pid < 0 || tid < 0) return;
        if (tid != pid) _threadToProcess[tid] = pid;
        GetOrAddProcess(pid);
    }

    /// <summary>
    /// PERF_RECORD_FORK: <paramref name="pid"/>/<paramref name="tid"/> is the child,
    /// <paramref name="ppid"/>/<paramref name="ptid"/> the parent. Same pid as the parent means
    /// a new thread (shares the maps); otherwise a new process with a copy of the parent's maps.
    /// </summary>
    public void Fork(int pid, int ppid, int tid, int ptid)
    {
        if (pid == ppid)
        {
            AddThread(pid, tid);
            if (_threadComms.TryGetValue(ptid, out var tc)) _threadComms[tid] = tc;
            return;
        }
        var parent = FindProcess(ppid);
        var child = new Process(pid, parent?.Maps.Clone() ?? new AddressSpace(), parent is null ? $":{pid}" : CommOf(ppid, ptid));
        _processes[pid] = child;
        if (tid != pid) _threadToProcess[tid] = pid;
        _threadComms.Remove(tid);
        if (parent is not null) _threadComms[tid] = child.Comm;
    }

    /// <summary>An exec (COMM with PERF_RECORD_MISC_COMM_EXEC, <c>sched_process_exec</c>): new empty maps, new name.</summary>
    public void Exec(int pid, int tid, string comm)
    {
        var p = GetOrAddProcess(pid);
        p.Maps = new AddressSpace();
        p.ExecCount++;
        p.Exited = false;
        p.Comm = comm;
        // The exec'ing thread becomes the leader; the other threads are gone.
        _threadComms[pid] = comm;
        if (tid != pid) _threadComms[tid] = comm;
    }

    /// <summary>A comm change without exec (<c>prctl(PR_SET_NAME)</c>, <c>pthread_setname_np</c>).</summary>
    public void SetComm(int pid, int tid, string comm)
    {
        var p = GetOrAddProcess(pid);
        AddThread(pid, tid);
        if (tid == pid || tid < 0) p.Comm = comm;
        _threadComms[tid < 0 ? pid : tid] = comm;
    }

    /// <summary>The comm of a thread: its own if it has one, else its process's.</summary>
    public string CommOf(int pid, int tid)
    {
        if (_threadComms.TryGetValue(tid, out var c)) return c;
        if (pid < 0) pid = ProcessOfThread(tid);
        if (pid >= 0 && _processes.TryGetValue(pid, out var p)) return p.Comm;
        return $":{tid}";
    }

    public void Mmap(int pid, Mapping mapping)
    {
        if (pid == -1 || mapping.Kind == MappingKind.Kernel && pid <= 0) { KernelMaps.Insert(mapping); return; }
        GetOrAddProcess(pid).Maps.Insert(mapping);
    }

    /// <summary>PERF_RECORD_EXIT / <c>sched_process_exit</c>. Forgotten later, oldest first, once the bound is passed.</summary>
    public void Exit(int pid, int tid)
    {
        if (tid != pid && tid >= 0)
        {
            _exitedThreads.Enqueue(tid);
            while (_exitedThreads.Count > _maxExited)
            {
                int old = _exitedThreads.Dequeue();
                if (!_processes.ContainsKey(old)) { _threadToProcess.Remove(old); _threadComms.Remove(old); }
            }
            return;
        }
        if (!_processes.TryGetValue(pid, out var p)) return;
        p.Exited = true;
        _exitedProcesses.Enqueue((pid, p));
        while (_exitedProcesses.Count > _maxExited)
        {
            var (oldPid, oldP) = _exitedProcesses.Dequeue();
            if (oldP.Exited && _processes.TryGetValue(oldPid, out var cur) && ReferenceEquals(cur, oldP))
            {
                _processes.Remove(oldPid);
                _threadComms.Remove(oldPid);
            }
        }
    }
}
