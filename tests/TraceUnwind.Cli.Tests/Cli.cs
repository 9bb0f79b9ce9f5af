using System.Text;

namespace TraceUnwind.Cli.Tests;

/// <summary>Runs <c>traceunwind</c> in-process through <see cref="Program.Run"/> with redirected standard streams.</summary>
internal static class Cli
{
    public sealed record Result(int Code, byte[] StdoutBytes, string Stderr)
    {
        public string Stdout => Encoding.UTF8.GetString(StdoutBytes);
    }

    public static Result Run(params string[] args) => RunWithStdin([], args);

    public static Result RunWithStdin(byte[] stdin, params string[] args) =>
        RunWithStreams(new MemoryStream(stdin, writable: false), args);

    public static Result RunWithStreams(Stream stdin, params string[] args)
    {
        var stdout = new MemoryStream();
        var stderr = new StringWriter();
        int code;
        using (CliConsole.Use(stdin, stdout, stderr))
            code = Program.Run(args);
        return new Result(code, stdout.ToArray(), stderr.ToString());
    }

    /// <summary>Runs with a caller-supplied stdout (a stream that fails, a pipe).</summary>
    public static (int Code, string Stderr) RunInto(Stream stdin, Stream stdout, params string[] args)
    {
        var stderr = new StringWriter();
        int code;
        using (CliConsole.Use(stdin, stdout, stderr))
            code = Program.Run(args);
        return (code, stderr.ToString());
    }

    /// <summary>Lines as the rewrite pipeline sees them: split on '\n', no terminators, a final empty piece dropped.</summary>
    public static List<string> Lines(string text)
    {
        var lines = text.Split('\n').ToList();
        if (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines;
    }
}
