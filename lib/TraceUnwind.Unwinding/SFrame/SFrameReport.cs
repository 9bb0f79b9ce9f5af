using System.Text;
using System.Text.Json;
using TraceUnwind.Diagnostics;
using TraceUnwind.Unwinding.Elf;

namespace TraceUnwind.Unwinding.SFrame;

/// <summary>
/// The work behind <c>traceunwind sframe ELF...</c>: for each file, the SFrame data in
/// <c>objdump --sframe</c>'s layout (or, with <c>json</c>, the decode of
/// <see cref="SFrameJsonWriter"/>: one object for one file, an array for several), then the
/// kernel's validation of it; problems go to <paramref name="stderr"/> naming the file and the
/// section offset. A section the kernel would refuse is still dumped, as objdump does.
/// </summary>
public static class SFrameReport
{
    /// <summary>Processes <paramref name="files"/>; returns how many could not be read or failed validation.</summary>
    public static int Run(TextWriter stdout, TextWriter stderr, IReadOnlyList<string> files, bool json, string tool = "traceunwind sframe")
    {
        int failed = 0;
        using var buffer = new MemoryStream();
        Utf8JsonWriter? jw = json ? new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }) : null;
        if (jw is not null && files.Count != 1) jw.WriteStartArray();
        foreach (var path in files)
        {
            ElfFile elf;
            try { elf = ElfFile.Load(path); }
            catch (Exception e) when (e is TraceFormatException or IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"{tool}: {(e is TraceFormatException t ? t.WithSource(path).Message : $"{path}: {e.Message}")}");
                failed++;
                continue;
            }
            if (!elf.TryFindSFrame(out var loc))
            {
                stderr.WriteLine($"{tool}: {path}: no .sframe section or PT_GNU_SFRAME segment");
                failed++;
                continue;
            }
            SFrameSection section;
            try
            {
                section = SFrameSection.Parse(elf.GetSFrameData(loc), loc.Address,
                    new SFrameParseOptions(Validate: false, Source: path, FileOffset: loc.FileOffset));
            }
            catch (SFrameException e)
            {
                stderr.WriteLine($"{tool}: {e.Message}");
                failed++;
                continue;
            }
            if (jw is not null) SFrameJsonWriter.Write(jw, elf, loc, section, Path.GetFileName(path));
            else SFrameDumper.WriteObjdump(stdout, section, path, elf.Header.BfdTargetName);

            try
            {
                SFrameSection.FromElf(elf, validate: true);
                if (section.Version != 3)
                    stderr.WriteLine($"{tool}: {path}: SFrame version {section.Version}: read, but the kernel accepts only version 3");
            }
            catch (SFrameException e)
            {
                stderr.WriteLine($"{tool}: fails the kernel's validation: {e.Message}");
                failed++;
            }
        }
        if (jw is not null)
        {
            if (files.Count != 1) jw.WriteEndArray();
            jw.Flush();
            if (buffer.Length > 0)
            {
                stdout.Write(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
                stdout.Write('\n');
            }
            jw.Dispose();
        }
        stdout.Flush();
        return failed;
    }
}
