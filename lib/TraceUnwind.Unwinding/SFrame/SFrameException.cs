using TraceUnwind.Diagnostics;

namespace TraceUnwind.Unwinding.SFrame;

/// <summary>
/// The kernel's three outcomes for SFrame data (kernel/unwind/sframe.c), kept as classes:
/// <list type="bullet">
/// <item><see cref="NoEntry"/> (<c>-ENOENT</c> in <c>unwind_user_next_sframe</c>): nothing describes
/// the address; an ordinary result that lookups return as <c>false</c>, never thrown.</item>
/// <item><see cref="BadAddress"/> (<c>-EFAULT</c>): a read that would leave the section, or a table the
/// kernel calls corrupt and drops ("removing bad .sframe section"): FRE type &gt; 2, data word size 3,
/// FRE start offsets not increasing, FDEs not sorted, data words left over, ...</item>
/// <item><see cref="Invalid"/> (<c>-EINVAL</c>): the header is refused (magic, version, flags,
/// aux header, counts, offsets), an FDE lies outside the text, a rule cannot be used (flex CFA
/// control word without <c>reg_p</c>), and the checks the v15 series adds (sframe.md §7.4).</item>
/// </list>
/// </summary>
public enum SFrameErrorKind : byte
{
    NoEntry,
    BadAddress,
    Invalid,
}

/// <summary>
/// A damaged or refused SFrame section. <see cref="SectionOffset"/> is the offset inside the
/// SFrame data where the problem is; <see cref="Position"/> the same as a file position.
/// </summary>
public sealed class SFrameException : Exception
{
    public SFrameException(SFrameErrorKind kind, string message, long sectionOffset, InputPosition position)
        : base(message)
    {
        Kind = kind;
        SectionOffset = sectionOffset;
        Position = position;
    }

    public SFrameErrorKind Kind { get; }
    public long SectionOffset { get; }
    public InputPosition Position { get; }

    /// <summary>The kernel's errno name for <see cref="Kind"/>.</summary>
    public string Errno => Kind switch
    {
        SFrameErrorKind.NoEntry => "ENOENT",
        SFrameErrorKind.BadAddress => "EFAULT",
        _ => "EINVAL",
    };

    /// <summary><c>libx.so: byte offset 0x2140 (8512): .sframe+0x5a: EFAULT: ...</c></summary>
    public override string Message => $"{Position}: .sframe+0x{SectionOffset:x}: {Errno}: {base.Message}";

    /// <summary>The message without position and class.</summary>
    public string Detail => base.Message;
}
