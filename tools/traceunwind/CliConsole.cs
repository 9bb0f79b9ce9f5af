namespace TraceUnwind.Cli;

/// <summary>
/// The process's standard streams as the commands see them. Tests swap them for in-memory ones
/// (<see cref="Use"/>); outputs write bytes to <see cref="OpenStdout"/>, messages go to <see cref="Error"/>.
/// </summary>
public static class CliConsole
{
    private sealed record Streams(Func<Stream> Stdin, Func<Stream> Stdout, TextWriter Error, bool ErrorIsTerminal);

    private static readonly AsyncLocal<Streams?> Current = new();

    private static Streams Get() => Current.Value ?? new Streams(
        () => OpenFd(0, FileAccess.Read) ?? Console.OpenStandardInput(1 << 16),
        () => OpenFd(1, FileAccess.Write) ?? Console.OpenStandardOutput(),
        Console.Error,
        !Console.IsErrorRedirected);

    /// <summary>
    /// A standard stream on its descriptor, not through System.Console: Console streams take the
    /// console's lock on every write, which the runtime holds while it raises CancelKeyPress, so the
    /// final flush after Ctrl-C would wait out the termination timeout.
    /// A redirected stdin stays seekable this way (<c>traceunwind fold &lt; perf.data</c>).
    /// An output descriptor that is a regular file is written with write(2) (<see cref="FdWriteStream"/>),
    /// not through a FileStream: a FileStream writes a seekable file with pwrite at offsets it counts
    /// itself and leaves the descriptor's offset where it was, so in <c>(echo a; traceunwind ...; echo b) &gt; out</c>
    /// or <c>traceunwind ... &gt; log 2&gt;&amp;1</c> the other writers of the same open file overwrote our output.
    /// </summary>
    public static Stream? OpenFd(int fd, FileAccess access)
    {
        FileStream fs;
        try
        {
            fs = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: false), access, 1);
        }
        catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
        if (access == FileAccess.Write && fs.CanSeek)
        {
            fs.Dispose();   // does not close the descriptor (not owned)
            return new FdWriteStream(fd);
        }
        return fs;
    }

    /// <summary>True inside <see cref="Use"/>: the commands' streams are the caller's, not the process's descriptors.</summary>
    public static bool IsRedirected => Current.Value is not null;

    public static Stream OpenStdin() => Get().Stdin();
    public static Stream OpenStdout() => Get().Stdout();
    public static TextWriter Error => Get().Error;
    public static bool ErrorIsTerminal => Get().ErrorIsTerminal;

    /// <summary>True when stdout is a terminal (never when redirected for tests).</summary>
    public static bool OutputIsTerminal => Current.Value is null && !Console.IsOutputRedirected;

    /// <summary>Redirects the streams for the current async flow (tests); dispose to restore.</summary>
    public static IDisposable Use(Stream stdin, Stream stdout, TextWriter stderr)
    {
        var old = Current.Value;
        Current.Value = new Streams(() => stdin, () => stdout, stderr, false);
        return new Restore(() => Current.Value = old);
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
