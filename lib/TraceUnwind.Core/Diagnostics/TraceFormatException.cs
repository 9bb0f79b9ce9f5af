namespace TraceUnwind.Diagnostics;

/// <summary>
/// The one exception type for malformed input (System.Reflection.Metadata uses
/// BadImageFormatException the same way): a container that cannot be trusted any more
/// (bad magic, a header that lies, a record boundary that is lost). Damage inside one
/// record whose boundary is still trusted is not thrown: it is counted in an
/// <see cref="ErrorTally"/> and the record is skipped.
/// </summary>
public sealed class TraceFormatException : Exception
{
    public TraceFormatException(string message, InputPosition position, Exception? inner = null)
        : base(message, inner)
    {
        Position = position;
    }

    public InputPosition Position { get; }

    /// <summary>Message prefixed with the position: <c>perf.data: byte offset 0x1a0 (416): ...</c>.</summary>
    public override string Message => $"{Position}: {base.Message}";

    /// <summary>The message without the position.</summary>
    public string Detail => base.Message;

    /// <summary>This error with the source name filled in where it was unknown.</summary>
    public TraceFormatException WithSource(string? source) =>
        Position.Source is null && source is not null ? new TraceFormatException(Detail, Position.WithSource(source), InnerException) : this;
}
