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
        // Not when stdout is the same terminal: the progress line would be drawn over the output.
        bool enabled = forceEnabled ?? (CliConsole.ErrorIsTerminal && !CliConsole.OutputIsTerminal
            && Environment.GetEnvironmentVariable("CI") is null or "" or "false");
        return new Progress(enabled ? stderr : null, label, totalBytes);
    }

    public bool Enabled => _err is not null;

    /// <summary>Wraps a read-only input so every read reports the bytes read so far (front ends without a progress hook).</summary>
    public Stream Wrap(Stream input) => _err is null ? input : new CountingStream(input, this);

    private sealed class CountingStream(Stream inner, Progress progress) : Stream
    {
        private long _read;
        public override bool CanRead => true;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));
        public override int Read(Span<byte> buffer) => Count(inner.Read(buffer));
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        private int Count(int n)
        {
            _read += n;
            progress.Report(CanSeek ? inner.Position : _read);
            return n;
        }
    }

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
