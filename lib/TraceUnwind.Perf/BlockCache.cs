using System.Buffers;

namespace TraceUnwind.Perf;

/// <summary>
/// The reader's large buffers (the input pipe's segments, the time-order queue's chunks), kept for
/// reuse by the thread that returns them rather than in the process-wide <see cref="ArrayPool{T}"/>:
/// with several readers running at once (a test suite) a shared pool hands a buffer to whichever asks
/// first, so what one run allocates would depend on the others. A run on one thread allocates its
/// buffers once; later runs there reuse them. At most <see cref="MaxKept"/> buffers stay per thread.
/// </summary>
internal static class BlockCache
{
    public const int MaxKept = 8;
    [ThreadStatic] private static Stack<byte[]>? t_blocks;

    /// <summary>A buffer of exactly <paramref name="size"/> bytes (the reader uses one size: 1 MiB).</summary>
    public static byte[] Rent(int size)
    {
        var blocks = t_blocks;
        if (blocks is { Count: > 0 } && blocks.Peek().Length == size) return blocks.Pop();
        return new byte[size];
    }

    public static void Return(byte[] block)
    {
        var blocks = t_blocks ??= new Stack<byte[]>();
        if (blocks.Count < MaxKept) blocks.Push(block);
    }

    /// <summary>The same as a <see cref="MemoryPool{T}"/>, for the input's <c>PipeReader</c>.</summary>
    public sealed class Pool : MemoryPool<byte>
    {
        public static readonly Pool Instance = new();

        public override int MaxBufferSize => Array.MaxLength;

        public override IMemoryOwner<byte> Rent(int minBufferSize = -1) => new Owner(BlockCache.Rent(Math.Max(minBufferSize, 4096)));

        protected override void Dispose(bool disposing) { }

        private sealed class Owner(byte[] block) : IMemoryOwner<byte>
        {
            private byte[]? _block = block;

            public Memory<byte> Memory => _block ?? throw new ObjectDisposedException(nameof(Owner));

            public void Dispose()
            {
                var b = _block;
                _block = null;
                if (b is not null) BlockCache.Return(b);
            }
        }
    }
}
