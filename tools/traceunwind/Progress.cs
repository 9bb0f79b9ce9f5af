using System.Diagnostics;

namespace TraceUnwind.Cli;

/// <summary>
/// Progress on stderr, only when stderr is a terminal (never in pipes, files or CI), at most
/// four updates a second, erased at the end so the terminal is left clean.
/// </summary>
public sealed class Progress : IDisposable
{
    private readonly TextWriter? _err;
    private readonly long _total;
    private readonly string _label;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _lastTick = -1000;
    private bool _shown;

    private Progress(TextWriter? err, string label, long total)
    {
        _err = err;
        _label = label;
        _total = total;
    }

    /// <summary>A reporter that is silent unless stderr is a terminal and CI is not set.</summary>
    public static Progress Create(TextWriter stderr, string label, long totalBytes, bool? forceEnabled = null)
    {
        bool enabled = forceEnabled ?? (CliConsole.ErrorIsTerminal && Environment.GetEnvironmentVariable("CI") is null or "" or "false");
        return new Progress(enabled ? stderr : null, label, totalBytes);
    }

    public bool Enabled => _err is not null;

    /// <summary>Reports <paramref name="bytesDone"/>; cheap when nothing needs printing.</summary>
    public void Report(long bytesDone, long items = -1)
    {
        if (_err is null) return;
        long now = _clock.ElapsedMilliseconds;
        if (now - _lastTick < 250) return;
        _lastTick = now;
        string pct = _total > 0 ? $" {100.0 * bytesDone / _total,5:0.0}%" : "";
        string it = items >= 0 ? $", {items} samples" : "";
        _err.Write($"\r{_label}:{pct} {bytesDone / (1024.0 * 1024.0):0.0} MiB{it}   ");
        _err.Flush();
        _shown = true;
    }

    public void Dispose()
    {
        if (_err is not null && _shown)
        {
            _err.Write("\r\x1b[K");
            _err.Flush();
        }
    }
}
