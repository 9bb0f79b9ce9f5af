using System.Buffers;
using TraceUnwind.Model;

namespace TraceUnwind.Output.Internal;

/// <summary>Renders the key text of a frame (its name, or name plus attributes) into a scratch buffer.</summary>
internal delegate void FrameKeyRenderer(in Frame frame, ArrayBufferWriter<byte> destination);

/// <summary>
/// Frame → dense id of its rendered text. The first time a frame identity (<see cref="FrameKey"/>)
/// is seen its text is rendered and interned (two frames with the same text get the same id);
/// afterwards the id comes from a dictionary lookup with no allocation and no symbolizer call.
/// Memory is bounded by the distinct frame identities and texts.
/// </summary>
internal sealed class FrameNameCache
{
    private readonly Dictionary<FrameKey, int> _ids = new();
    private readonly ArrayBufferWriter<byte> _scratch = new(256);
    private readonly FrameKeyRenderer _render;

    public FrameNameCache(FrameKeyRenderer render) => _render = render;

    public NameTable Names { get; } = new();

    public int DistinctFrames => _ids.Count;

    public int GetId(in Frame frame)
    {
        var key = new FrameKey(frame);
        if (_ids.TryGetValue(key, out int id)) return id;
        _scratch.ResetWrittenCount();
        _render(frame, _scratch);
        id = Names.Intern(_scratch.WrittenSpan);
        _ids.Add(key, id);
        return id;
    }
}
