using System.Text.Json;
using System.Text.Json.Nodes;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding.Elf;
using TraceUnwind.Unwinding.SFrame;

namespace TraceUnwind.Unwinding.Tests;

/// <summary>
/// The full decode (every header field, FDE attribute, FRE word and rule) compared with the
/// reference decodes in fixtures/sframe/*/*.sframe.json, which were checked line by line against
/// objdump --sframe when the fixtures were made; and the kernel's validation accepts every fixture.
/// </summary>
public class SFrameDecodeTests
{
    public static TheoryData<string> Binaries() => SFrameObjdumpTests.Dumps();

    [Theory]
    [MemberData(nameof(Binaries))]
    public void JsonDecodeMatchesReference(string binary)
    {
        var expected = JsonNode.Parse(Fixtures.ReadText("sframe", binary + ".sframe.json"))!;
        var elf = ElfFile.Load(Fixtures.Path("sframe", binary));
        Assert.True(elf.TryFindSFrame(out var loc));
        var section = SFrameSection.FromElf(elf)!;
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
            SFrameJsonWriter.Write(w, elf, loc, section, Path.GetFileName(binary));
        var actual = JsonNode.Parse(ms.ToArray())!;
        string? diff = JsonDiff(expected, actual, "$");
        Assert.True(diff is null, diff);
    }

    [Theory]
    [MemberData(nameof(Binaries))]
    public void KernelValidationAcceptsFixture(string binary)
    {
        var elf = ElfFile.Load(Fixtures.Path("sframe", binary));
        Assert.True(elf.TryGetTextRange(out _, out _));
        var section = SFrameSection.FromElf(elf, validate: true)!;
        Assert.True(section.IsValidated);
        Assert.Equal((int)section.Header.NumFres, section.Fres.Length);
        // Every row of a compiler-made section yields a usable rule.
        for (int i = 0; i < section.Fres.Length; i++)
            Assert.False((section.RuleOf(i).Flags & FrameRuleFlags.Unusable) != 0, $"FRE {i}: {section.RuleOf(i)}");
    }

    /// <summary>Structural comparison ignoring object key order; returns the first difference.</summary>
    internal static string? JsonDiff(JsonNode? e, JsonNode? a, string path)
    {
        switch (e)
        {
            case null: return a is null ? null : $"{path}: expected null, got {a.ToJsonString()}";
            case JsonObject eo:
                if (a is not JsonObject ao) return $"{path}: expected object, got {a?.ToJsonString()}";
                foreach (var (k, v) in eo)
                {
                    if (!ao.ContainsKey(k)) return $"{path}.{k}: missing";
                    if (JsonDiff(v, ao[k], path + "." + k) is { } d) return d;
                }
                foreach (var (k, _) in ao)
                    if (!eo.ContainsKey(k)) return $"{path}.{k}: unexpected {ao[k]?.ToJsonString()}";
                return null;
            case JsonArray ea:
                if (a is not JsonArray aa) return $"{path}: expected array, got {a?.ToJsonString()}";
                if (ea.Count != aa.Count) return $"{path}: {ea.Count} elements expected, got {aa.Count}";
                for (int i = 0; i < ea.Count; i++)
                    if (JsonDiff(ea[i], aa[i], $"{path}[{i}]") is { } d) return d;
                return null;
            default:
                return JsonNode.DeepEquals(e, a) ? null : $"{path}: expected {e.ToJsonString()}, got {a?.ToJsonString()}";
        }
    }
}
