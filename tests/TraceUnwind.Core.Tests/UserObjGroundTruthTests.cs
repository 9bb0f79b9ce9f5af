using System.Text;
using TraceUnwind.Processes;
using TraceUnwind.Symbols;
using TraceUnwind.Testing;

namespace TraceUnwind.Core.Tests;

/// <summary>
/// The kernel's sym-userobj lines (<c>sym.txt</c>) against our find_vma + path[+0xOFF] on the
/// maps snapshot each frame's row names, for every frame the capture marks unambiguous.
/// </summary>
public class UserObjGroundTruthTests
{
    [Theory]
    [InlineData("bash_loop")]
    [InlineData("dlopen")]
    [InlineData("forkexec")]
    [InlineData("path_with_space")]
    [InlineData("python_script")]
    public void ReproducesKernelLines(string capture)
    {
        var rows = Fixtures.ReadText("ftrace", capture, "pairs.tsv.gz").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var header = rows[0].Split('\t');
        int Col(string n) => Array.IndexOf(header, n);
        int cAddr = Col("addr"), cTgid = Col("tgid"), cSnap = Col("maps_snapshot"), cSym = Col("sym_line"), cNote = Col("note");
        var mapsDir = Fixtures.Path("ftrace", capture, "maps");
        var spaces = new Dictionary<string, AddressSpace>();
        int checkedFrames = 0;
        foreach (var row in rows.Skip(1))
        {
            var f = row.Split('\t');
            if (f.Length <= cNote || f[cNote].Length != 0 || f[cSnap].Length == 0) continue;
            string key = f[cSnap] + "/" + f[cTgid];
            if (!spaces.TryGetValue(key, out var space))
            {
                string seq = f[cSnap].Split('-')[0], reason = f[cSnap][(seq.Length + 1)..];
                var file = Directory.GetFiles(mapsDir, $"{seq}-{f[cTgid]}-*-{reason}.maps").Single();
                space = new AddressSpace();
                foreach (var m in ProcMapsParser.ParseAll(File.ReadAllBytes(file))) space.Insert(m);
                spaces[key] = space;
            }
            ulong addr = Convert.ToUInt64(f[cAddr], 16);
            var vma = space.FindVma(addr);
            string ours = vma is { IsFileBacked: true }
                ? " => " + UserObj.Format(vma, addr)
                : $" =>  <{addr:x16}>";
            Assert.Equal(f[cSym], ours);
            checkedFrames++;
        }
        Assert.True(checkedFrames > 100, $"only {checkedFrames} frames checked in {capture}");
    }
}
