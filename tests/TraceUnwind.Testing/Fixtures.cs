using System.IO.Compression;

namespace TraceUnwind.Testing;

/// <summary>Locates the repository's <c>fixtures/</c> folder from a test's output directory.</summary>
public static class Fixtures
{
    private static readonly Lazy<string> RootLazy = new(FindRoot);

    /// <summary>The repository root (the folder holding <c>TraceUnwind.sln</c>).</summary>
    public static string RepoRoot => RootLazy.Value;

    /// <summary>Absolute path of <c>fixtures/</c> + <paramref name="relative"/>.</summary>
    public static string Path(params string[] relative) =>
        System.IO.Path.Combine([RepoRoot, "fixtures", .. relative]);

    /// <summary>Reads a fixture as bytes, transparently gunzipping <c>*.gz</c>.</summary>
    public static byte[] ReadBytes(params string[] relative)
    {
        string p = Path(relative);
        if (!p.EndsWith(".gz", StringComparison.Ordinal)) return File.ReadAllBytes(p);
        using var gz = new GZipStream(File.OpenRead(p), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>Reads a fixture as UTF-8 text (gunzipping <c>*.gz</c>).</summary>
    public static string ReadText(params string[] relative) => System.Text.Encoding.UTF8.GetString(ReadBytes(relative));

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(System.IO.Path.Combine(d.FullName, "TraceUnwind.sln")))
                return d.FullName;
        throw new InvalidOperationException("TraceUnwind.sln not found above " + AppContext.BaseDirectory);
    }
}
