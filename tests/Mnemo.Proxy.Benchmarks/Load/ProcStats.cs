using System.Globalization;

namespace Mnemo.Proxy.Benchmarks.Load;

/// <summary>What Linux's /proc says about another process: resident memory and CPU time.</summary>
internal static class ProcStats
{
    // USER_HZ: the unit of utime/stime in /proc/pid/stat, 100 on every Linux this runs on.
    private const double ClockTicks = 100;

    public static long RssBytes(int pid) => StatusKb(pid, "VmRSS:") * 1024;

    /// <summary>Peak resident set since the process started.</summary>
    public static long PeakRssBytes(int pid) => StatusKb(pid, "VmHWM:") * 1024;

    public static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / ClockTicks;
    }

    public static string Machine()
    {
        var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        var memory = StatusLine("/proc/meminfo", "MemTotal:");
        return $"{Environment.ProcessorCount} cores, {cpu}, {memory / 1024 / 1024} GiB RAM, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";
    }

    private static long StatusKb(int pid, string field) => StatusLine($"/proc/{pid}/status", field);

    private static long StatusLine(string path, string field)
    {
        var line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}
