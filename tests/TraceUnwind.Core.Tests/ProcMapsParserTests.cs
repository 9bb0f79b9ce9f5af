using System.Text;
using System.Text.RegularExpressions;
using TraceUnwind.Processes;
using TraceUnwind.Testing;

namespace TraceUnwind.Core.Tests;

public class ProcMapsParserTests
{
    // An independent reading of the same lines (a regex), to compare against.
    private static readonly Regex Line = new(@"^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+) *(.*)$");

    [Theory]
    [InlineData("bash-post-exec.maps")]
    [InlineData("dlopen-after-unlink.maps")]
    public void AgreesWithRegexOnRealMaps(string fixture)
    {
        var lines = File.ReadAllLines(Fixtures.Path("core", fixture));
        foreach (var text in lines)
        {
            var m = Line.Match(text);
            Assert.True(m.Success, text);
            Assert.True(ProcMapsParser.TryParse(Encoding.UTF8.GetBytes(text), out var p), text);
            Assert.Equal(Convert.ToUInt64(m.Groups[1].Value, 16), p.Start);
            Assert.Equal(Convert.ToUInt64(m.Groups[2].Value, 16), p.End);
            Assert.Equal(Convert.ToUInt64(m.Groups[7].Value, 16), p.PgOff);
            Assert.Equal(ulong.Parse(m.Groups[10].Value), p.Inode);
            Assert.Equal(m.Groups[5].Value == "x", (p.Prot & Mapping.ProtExec) != 0);
            Assert.Equal(m.Groups[11].Value.TrimEnd(), Encoding.UTF8.GetString(p.Path).TrimEnd());
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("not a maps line")]
    [InlineData("7f00-7e00 r-xp 00000000 fe:00 1 /backwards")]
    [InlineData("7f00-7f10 r-xp 0000000g fe:00 1 /bad-hex")]
    [InlineData("7f00-7f10 r-x 00000000 fe:00 1 /short-perms")]
    [InlineData("12345678901234567-7f10 r-xp 00000000 fe:00 1 /too-long")]
    public void RejectsMalformedLines(string text) =>
        Assert.False(ProcMapsParser.TryParse(Encoding.UTF8.GetBytes(text), out _));

    [Fact]
    public void PathKeepsSpacesAndDeletedSuffix()
    {
        Assert.True(ProcMapsParser.TryParse("7f00-7f10 r-xp 00001000 fe:00 42     /tmp/a dir/lib x.so (deleted)"u8, out var p));
        var m = p.ToMapping();
        Assert.Equal("/tmp/a dir/lib x.so (deleted)", m.Path);
        Assert.Equal("/tmp/a dir/lib x.so", m.FilePath);
        Assert.Equal(MappingKind.File, m.Kind);
    }
}
