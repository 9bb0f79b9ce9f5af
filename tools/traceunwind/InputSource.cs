using System.Text;

namespace TraceUnwind.Cli;

/// <summary>What an input was sniffed to be, from its first bytes.</summary>
public enum InputFormat
{
    /// <summary>perf.data in file mode (<c>PERFILE2</c>, header size 104), either byte order.</summary>
    PerfFile,
    /// <summary>perf.data in pipe mode (<c>PERFILE2</c>, header size 16): <c>perf record -o -</c>.</summary>
    PerfPipe,
    /// <summary>Text: ftrace <c>trace</c>/<c>trace_pipe</c>, <c>trace-cmd report</c>.</summary>
    Text,
    /// <summary>Nothing at all.</summary>
    Empty,
    /// <summary>Something else; <see cref="InputSource.Describe"/> says what.</summary>
    Unknown,
}

/// <summary>
/// An opened input (a file, or stdin for <c>-</c>) with its format sniffed by magic. The sniffed
/// bytes are not lost: <see cref="Stream"/> starts at byte 0 (files seek back; pipes replay a prefix).
/// </summary>
public sealed class InputSource : IDisposable
{
    private InputSource(string name, Stream stream, bool seekable, InputFormat format, byte[] head, bool isStdin)
    {
        Name = name;
        Stream = stream;
        IsSeekable = seekable;
        Format = format;
        Head = head;
        IsStdin = isStdin;
    }

    /// <summary>Display name for messages: the path, or <c>stdin</c>.</summary>
    public string Name { get; }
    public Stream Stream { get; }
    public bool IsSeekable { get; }
    public bool IsStdin { get; }
    public InputFormat Format { get; }
    /// <summary>The first bytes (up to 16).</summary>
    public byte[] Head { get; }
    /// <summary>Total length when known (files), else -1.</summary>
    public long Length => IsSeekable ? Stream.Length : -1;

    public const string StdinName = "-";

    /// <summary>Opens <paramref name="path"/> (<c>-</c> = stdin) and sniffs it.</summary>
    /// <exception cref="IOException">The file cannot be opened.</exception>
    public static InputSource Open(string path, Stream? stdin = null)
    {
        bool isStdin = path == StdinName;
        Stream s;
        string name;
        if (isStdin)
        {
            s = stdin ?? CliConsole.OpenStdin();
            name = "stdin";
        }
        else
        {
            if (Directory.Exists(path)) throw new IOException($"{path}: is a directory");
            s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
            name = path;
        }
        bool seekable = s.CanSeek;
        var head = new byte[16];
        int n = 0;
        while (n < head.Length)
        {
            int r = s.Read(head, n, head.Length - n);
            if (r <= 0) break;
            n += r;
            // A pipe that delivers a short first chunk: 8 bytes are enough to sniff text, 16 for perf.
            if (!seekable && n >= 8 && !(head[0] == 'P' || head[0] == '2')) break;
        }
        Array.Resize(ref head, n);
        if (seekable) s.Position = 0;
        else s = new PrefixedStream(head, s);
        return new InputSource(name, s, seekable, Sniff(head), head, isStdin);
    }

    /// <summary>
    /// Opens <paramref name="path"/> for <c>traceunwind COMMAND</c>; when it cannot be opened, says so on
    /// <paramref name="stderr"/> (<c>traceunwind COMMAND: cannot open 'PATH': reason</c>) and returns false.
    /// </summary>
    public static bool TryOpen(string path, string command, TextWriter stderr, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out InputSource? input)
    {
        try
        {
            input = Open(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"traceunwind {command}: cannot open '{path}': {e.Message}");
            input = null;
            return false;
        }
    }

    /// <summary>Decides the format from the first bytes.</summary>
    public static InputFormat Sniff(ReadOnlySpan<byte> head)
    {
        if (head.IsEmpty) return InputFormat.Empty;
        if (head.Length >= 16 && (head[..8].SequenceEqual("PERFILE2"u8) || head[..8].SequenceEqual("2ELIFREP"u8)))
        {
            bool le = head[0] == 'P';
            ulong size = le ? System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(head[8..16])
                            : System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(head[8..16]);
            return size == 16 ? InputFormat.PerfPipe : InputFormat.PerfFile;
        }
        if (head.Length >= 8 && (head[..8].SequenceEqual("PERFILE2"u8) || head[..8].SequenceEqual("2ELIFREP"u8)))
            return InputFormat.PerfFile; // truncated header: the perf reader says so precisely
        return LooksLikeText(head) ? InputFormat.Text : InputFormat.Unknown;
    }

    private static bool LooksLikeText(ReadOnlySpan<byte> head)
    {
        foreach (byte b in head)
            if (b < 0x20 && b is not ((byte)'\n' or (byte)'\r' or (byte)'\t')) return false;
        return true;
    }

    /// <summary>What the first bytes look like, for "not a perf.data file: starts with ..." messages.</summary>
    public string Describe()
    {
        if (Head.Length == 0) return "the input is empty";
        string hex = string.Join(' ', Head.Take(8).Select(b => b.ToString("x2")));
        string? what = Head switch
        {
            [0x7f, (byte)'E', (byte)'L', (byte)'F', ..] => "an ELF file",
            [0x1f, 0x8b, ..] => "gzip data (decompress it first: zcat FILE | traceunwind ...)",
            [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd data (decompress it first: zstdcat FILE | traceunwind ...)",
            [0x17, 0x08, 0x44, (byte)'t', (byte)'r', (byte)'a', (byte)'c', (byte)'i', ..] => "a trace-cmd trace.dat (render it with `trace-cmd report` and pipe that in)",
            [(byte)'P', (byte)'E', (byte)'R', (byte)'F', (byte)'I', (byte)'L', (byte)'E', ..] => "a perf.data header that is cut short",
            _ => null,
        };
        string printable = new(Encoding.ASCII.GetString(Head.AsSpan(0, Math.Min(8, Head.Length))).Select(c => c is >= ' ' and < '\x7f' ? c : '.').ToArray());
        return $"starts with {hex} (\"{printable}\")" + (what is null ? "" : $": {what}");
    }

    public void Dispose() => Stream.Dispose();

    /// <summary>Replays sniffed bytes in front of a non-seekable stream.</summary>
    private sealed class PrefixedStream(byte[] prefix, Stream inner) : Stream
    {
        private int _prefixPos;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            if (_prefixPos < prefix.Length)
            {
                int n = Math.Min(buffer.Length, prefix.Length - _prefixPos);
                prefix.AsSpan(_prefixPos, n).CopyTo(buffer);
                _prefixPos += n;
                return n;
            }
            return inner.Read(buffer);
        }
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_prefixPos < prefix.Length) return Read(buffer.Span);
            return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
