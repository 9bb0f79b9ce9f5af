using System.Runtime.CompilerServices;
namespace TraceUnwind.Ftrace.Parsing;

/// <summary>Which printer made an event line.</summary>
public enum EventLayout : byte
{
    /// <summary>
    /// <c>trace</c> / <c>trace_pipe</c> with context-info (kernel/trace/trace_output.c
    /// <c>trace_print_context</c>), and <c>trace-cmd report</c>'s default and <c>-t</c> forms:
    /// <c>COMM-PID [(TGID)] [CPU] [FLAGS] SECS.USECS: TEXT</c>.
    /// </summary>
    Context,
    /// <summary>
    /// latency-format (<c>lat_print_generic</c> + <c>lat_print_timestamp</c>), and <c>trace-cmd report -l</c>:
    /// <c>COMM-PID CPUFLAGS TIMEus[MARK]: TEXT</c> or <c>COMM-PID CPUFLAGS SECS.USECS: TEXT</c>.
    /// </summary>
    Latency,
    /// <summary>
    /// latency-format + verbose: <c>COMM PID CPU FLAGS PREEMPT IDX [ABSTS] MSECS.USECSms (+DELTAms): TEXT</c>.
    /// </summary>
    LatencyVerbose,
    /// <summary>The <c>raw</c> option: <c>PID CPU NSECS TEXT</c> (<c>17008 0 3675856111259 type: 13</c>).</summary>
    Raw,
    /// <summary>context-info off: the line is the event text alone; no pid, cpu or time.</summary>
    NoContext,
}

/// <summary>
/// One parsed event line. A view into the line: valid only while the line's bytes are.
/// Unknown numbers are -1.
/// </summary>
public ref struct EventLine
{
    public EventLayout Layout;
    /// <summary><c>trace-cmd report</c>'s instance prefix (<c>tu_tc</c> of <c>tu_tc: </c>); empty otherwise.</summary>
    public ReadOnlySpan<byte> Buffer;
    /// <summary>The comm as printed, padding removed (<c>&lt;...&gt;</c> when the kernel did not know it).</summary>
    public ReadOnlySpan<byte> Comm;
    /// <summary>The pid column: a thread id.</summary>
    public int Pid;
    /// <summary>The record-tgid column; -1 when absent or printed <c>(-------)</c>.</summary>
    public int Tgid;
    public int Cpu;
    /// <summary>The irq-info flags column (<c>d..2.</c>, <c>DBZff</c>); empty when absent.</summary>
    public ReadOnlySpan<byte> Flags;
    public TraceTimestamp Timestamp;
    /// <summary>Everything after the context's <c>": "</c>.</summary>
    public ReadOnlySpan<byte> Text;
    /// <summary>Index of <see cref="Text"/> in the line.</summary>
    public int TextStart;

    /// <summary>
    /// The event name: <see cref="Text"/> up to the first <c>:</c>, <c>(</c> (syscall events print
    /// <c>sys_openat(dfd: ...)</c>) or space; the whole text for <c>&lt;user stack trace&gt;</c> and
    /// <c>&lt;stack trace&gt;</c>.
    /// </summary>
    public readonly ReadOnlySpan<byte> EventName => NameOf(Text);

    /// <summary>True for the kernel's <c>&lt;user stack trace&gt;</c> block header.</summary>
    public readonly bool IsUserStackHeader => Text.SequenceEqual(FtraceText.UserStackHeader);

    /// <summary>True for the kernel's <c>&lt;stack trace&gt;</c> block header.</summary>
    public readonly bool IsKernelStackHeader => Text.SequenceEqual(FtraceText.KernelStackHeader);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static ReadOnlySpan<byte> NameOf(ReadOnlySpan<byte> text)
    {
        if (!text.IsEmpty && text[0] == (byte)'<') return text;
        int i = text.IndexOfAny((byte)':', (byte)'(', (byte)' ');
        return i < 0 ? text : text[..i];
    }
}

/// <summary>Fixed texts of the ftrace and trace-cmd formats.</summary>
public static class FtraceText
{
    /// <summary>kernel/trace/trace_output.c <c>trace_user_stack_print</c>.</summary>
    public static ReadOnlySpan<byte> UserStackHeader => "<user stack trace>"u8;
    /// <summary>kernel/trace/trace_output.c <c>trace_stack_print</c>.</summary>
    public static ReadOnlySpan<byte> KernelStackHeader => "<stack trace>"u8;
    /// <summary>The start of every frame line the kernel prints: <c>" => "</c>.</summary>
    public static ReadOnlySpan<byte> FramePrefix => " => "u8;
    /// <summary>trace-cmd's frame lines: <c>"\t=> "</c> (the <c>user_stack</c> print fmt <c>"\t=> %ps\n"</c>).</summary>
    public static ReadOnlySpan<byte> TraceCmdFramePrefix => "\t=> "u8;
    /// <summary>kernel/trace/trace.c <c>tracing_read_pipe</c> / <c>s_show</c>: the line buffer overflowed.</summary>
    public static ReadOnlySpan<byte> LineTooBig => "[LINE TOO BIG]"u8;
    /// <summary>The trace-cmd event that carries a user stack.</summary>
    public static ReadOnlySpan<byte> TraceCmdUserStack => "user_stack"u8;
    /// <summary>The trace-cmd event that carries a kernel stack.</summary>
    public static ReadOnlySpan<byte> TraceCmdKernelStack => "kernel_stack"u8;
    public static ReadOnlySpan<byte> SchedProcess => "sched_process_"u8;
    public static ReadOnlySpan<byte> SchedProcessExec => "sched_process_exec"u8;
    public static ReadOnlySpan<byte> SchedProcessFork => "sched_process_fork"u8;
    public static ReadOnlySpan<byte> SchedProcessExit => "sched_process_exit"u8;
}
