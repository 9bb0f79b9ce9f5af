using System.Buffers.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace TraceUnwind.Output.Internal;

/// <summary>Shared JSON settings and number formatting for the JSON writers.</summary>
internal static class JsonText
{
    /// <summary>Compact output; names are not HTML-escaped (<c>+</c> stays <c>+</c>), control characters and quotes are.</summary>
    public static readonly JsonWriterOptions Options = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
        SkipValidation = false,
    };

    /// <summary>Nanoseconds as microseconds with 3 decimals (<c>134860713.123</c>), exact (no double rounding).</summary>
    public static void WriteMicroseconds(Utf8JsonWriter json, ulong nanoseconds)
    {
        Span<byte> tmp = stackalloc byte[32];
        Utf8Formatter.TryFormat(nanoseconds / 1000, tmp, out int n);
        tmp[n++] = (byte)'.';
        Utf8Formatter.TryFormat(nanoseconds % 1000, tmp[n..], out int m, new System.Buffers.StandardFormat('D', 3));
        json.WriteRawValue(tmp[..(n + m)], skipInputValidation: true);
    }
}
