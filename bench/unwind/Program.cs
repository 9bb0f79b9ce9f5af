using System.Diagnostics;
using System.Globalization;
using TraceUnwind.Model;
using TraceUnwind.Testing;
using TraceUnwind.Unwinding;
using TraceUnwind.Unwinding.Tests;

namespace TraceUnwind.Bench.Unwind;

/// <summary>
/// Frames per second of <see cref="UserStackUnwinder"/> over the real perf --call-graph dwarf
/// captures in fixtures/ (unwind-sid: SFrame V3; unwind-sid-fp: frame pointers). Samples are
/// decoded once; the timed loop only unwinds (one thread). Each case: a warm-up pass, then
/// repeated passes for about <c>--seconds</c>, reported as the median of 5 rounds.
/// Usage: <c>dotnet run -c Release --project bench/unwind [-- --seconds 2]</c>.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        double seconds = 2;
        for (int i = 0; i + 1 < args.Length; i++)
            if (args[i] == "--seconds") seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture);

        Console.WriteLine($"# unwinder benchmark: {RuntimeInfo()}");
        Run("unwind-sid (SFrame V3), --unwind sframe", "unwind-sid", UnwindMode.SFrame, seconds);
        Run("unwind-sid (SFrame V3), --unwind auto", "unwind-sid", UnwindMode.Auto, seconds);
        Run("unwind-sid-fp (frame pointers), --unwind fp", "unwind-sid-fp", UnwindMode.FramePointer, seconds);
        return 0;
    }

    private static string RuntimeInfo() =>
        $"{System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}, {Environment.ProcessorCount} cpus, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}";

    private static void Run(string name, string folder, UnwindMode mode, double seconds)
    {
        var samples = PerfDataMini.Read(Fixtures.ReadBytes(folder, "perf.data"));
        var unwinder = new UserStackUnwinder(mode, Fixtures.Path(folder, "symfs"));
        var frames = new Frame[512];

        long Pass()
        {
            long n = 0;
            foreach (var s in samples)
                n += unwinder.Unwind(new CapturedUserStack(UnwindArch.X86_64, s.Abi, s.RegsMask, s.Regs, s.Stack), s.Maps, frames, out _);
            return n;
        }

        long perPass = Pass(); // warm-up: files, bindings, rule cache, JIT tiers
        for (var sw = Stopwatch.StartNew(); sw.Elapsed.TotalSeconds < 1;) Pass();

        var rates = new List<double>();
        for (int round = 0; round < 5; round++)
        {
            long frameCount = 0, passes = 0;
            long alloc0 = GC.GetAllocatedBytesForCurrentThread();
            long t0 = Stopwatch.GetTimestamp(), t1;
            do
            {
                frameCount += Pass();
                passes++;
                t1 = Stopwatch.GetTimestamp();
            } while (Stopwatch.GetElapsedTime(t0, t1).TotalSeconds < seconds / 5);
            long alloc = GC.GetAllocatedBytesForCurrentThread() - alloc0;
            rates.Add(frameCount / Stopwatch.GetElapsedTime(t0, t1).TotalSeconds);
            if (alloc != 0) Console.WriteLine($"  round {round}: {alloc} bytes allocated!");
        }
        rates.Sort();
        double median = rates[2];
        Console.WriteLine(FormattableString.Invariant(
            $"{name}: {samples.Count} samples, {perPass} frames/pass ({(double)perPass / samples.Count:F1}/sample): {median / 1e6:F2} M frames/s (min {rates[0] / 1e6:F2}, max {rates[4] / 1e6:F2}), {median / perPass * samples.Count / 1e6:F3} M samples/s"));
    }
}
