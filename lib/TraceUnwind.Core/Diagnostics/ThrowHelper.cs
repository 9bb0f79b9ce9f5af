using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace TraceUnwind.Diagnostics;

/// <summary>
/// Cold throw paths, kept out of line so the checks that call them inline
/// (dotnet/runtime <c>Throw.cs</c>).
/// </summary>
public static class ThrowHelper
{
    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void OutOfBounds(long offset, long wanted, long available) =>
        throw new TraceFormatException(
            $"truncated data: needed {wanted} bytes at byte offset 0x{offset:x} ({offset}), only {Math.Max(0, available)} left",
            new InputPosition(null, offset));

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void Format(string message, long offset) =>
        throw new TraceFormatException(message, new InputPosition(null, offset));

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static T Format<T>(string message, long offset) =>
        throw new TraceFormatException(message, new InputPosition(null, offset));
}
