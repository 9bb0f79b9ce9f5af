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
    /// A standard stream as a plain FileStream on its descriptor, not through System.Console: Console
    /// streams take the console's lock on every write, which the runtime holds while it raises
    /// CancelKeyPress, so the final flush after Ctrl-C would wait out the termination timeout.
    /// A redirected stdin stays seekable this way (<c>traceunwind fold &lt; perf.data</c>).
    /// </summary>
    public static FileStream? OpenFd(int fd, FileAccess access)
    {
        try
        {
            return new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: false), access, 1);
        }
        catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static Stream OpenStdin() => Get().Stdin();
    public static Stream OpenStdout() => Get().Stdout();
    public static TextWriter Error => Get().Error;
    public static bool ErrorIsTerminal => Get().ErrorIsTerminal;

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
