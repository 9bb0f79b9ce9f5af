using System.Runtime.CompilerServices;
using System.Buffers;
using TraceUnwind.Processes;
using TraceUnwind.Text;

namespace TraceUnwind.Symbols;

/// <summary>
/// The kernel's sym-userobj rendering of a user address, byte for byte
/// (kernel/trace/trace_output.c <c>seq_print_user_ip</c>):
/// <c>trace_seq_path(file)</c> then <c>"[+0x%lx]"</c> of <c>ip - vma-&gt;vm_start</c> (unsigned, so it wraps
/// below the mapping), optionally followed by <c>" &lt;%016lx&gt;"</c> (sym-addr).
/// </summary>
public static class UserObj
{
    /// <summary>Writes <c>path[+0xOFF]</c> for <paramref name="address"/> in <paramref name="mapping"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Write(IBufferWriter<byte> writer, Mapping mapping, ulong address, bool withAddress = false)
    {
        var path = mapping.PathUtf8;
        // path + "[+0x" + up to 16 digits + "]" + optional " <" 16 ">".
        int max = path.Length + 4 + 16 + 1 + (withAddress ? 19 : 0);
        var span = writer.GetSpan(max);
        path.CopyTo(span);
        int n = path.Length;
        "[+0x"u8.CopyTo(span[n..]);
        n += 4;
        n += Hex.Write(span[n..], mapping.Offset(address));
        span[n++] = (byte)']';
        if (withAddress)
        {
            span[n++] = (byte)' ';
            span[n++] = (byte)'<';
            n += Hex.Write(span[n..], address, 16);
            span[n++] = (byte)'>';
        }
        writer.Advance(n);
    }

    /// <summary>The same as a string (tests, CSV).</summary>
    public static string Format(Mapping mapping, ulong address, bool withAddress = false)
    {
        var w = new ArrayBufferWriter<byte>(mapping.PathUtf8.Length + 48);
        Write(w, mapping, address, withAddress);
        return System.Text.Encoding.UTF8.GetString(w.WrittenSpan);
    }

    /// <summary>The kernel's raw form of an unresolved user frame: <c>&lt;%016lx&gt;</c> (after <c>" =>  "</c>).</summary>
    public static void WriteRaw(IBufferWriter<byte> writer, ulong address)
    {
        var span = writer.GetSpan(18);
        span[0] = (byte)'<';
        Hex.Write(span[1..], address, 16);
        span[17] = (byte)'>';
        writer.Advance(18);
    }
}
