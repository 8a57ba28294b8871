using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Performance;

/// <summary>
/// The load benchmark's harness, run for seconds so it cannot rot unnoticed. It checks that every part runs and
/// reports; the numbers of so short a run mean nothing and are not asserted (that is what tests/Mnemo.Proxy.Benchmarks/run.sh is for).
/// </summary>
public sealed class BenchmarkSmokeTests
{
    [Test]
    public async Task SmokeRun_ReportsEveryScenarioAndTarget()
    {
        // Built in the same configuration as these tests (bin/<configuration>/net10.0).
        var configuration = Path.GetFileName(Path.GetDirectoryName(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)));
        var benchmark = Path.Combine(MnemoProcess.RepositoryRoot, "tests", "Mnemo.Proxy.Benchmarks", "bin", configuration!, "net10.0", "Mnemo.Proxy.Benchmarks.dll");
        Assert.That(File.Exists(benchmark), Is.True, $"{benchmark} is built with the solution");
        var json = Path.Combine(Path.GetTempPath(), $"mnemo-bench-{Guid.NewGuid():N}.json");
        try
        {
            using var run = MnemoProcess.Start([benchmark, "--smoke", "--json", json], workingDirectory: Path.GetDirectoryName(benchmark));
            var exitCode = await run.WaitForExitAsync(TimeSpan.FromMinutes(3));
            Assert.That(exitCode, Is.Zero, run.Output);
            Assert.That(run.Output, Does.Contain("Closed loop").And.Contain("Open loop").And.Contain("Delay mode").And.Contain("Targets"));

            using var report = JsonDocument.Parse(await File.ReadAllTextAsync(json));
            var root = report.RootElement;
            Assert.That(root.GetProperty("Closed").GetArrayLength(), Is.EqualTo(12), "direct, proxy-off and proxy-memory; json and stream; concurrency 1 and 32");
            Assert.That(root.GetProperty("Open").GetArrayLength(), Is.EqualTo(6));
            Assert.That(root.GetProperty("Delay").GetArrayLength(), Is.EqualTo(9), "proxy-off, proxy-memory and proxy-cold; json, stream and a slow upload");
            Assert.That(root.GetProperty("Chunks").GetArrayLength(), Is.EqualTo(4));
            Assert.That(root.GetProperty("Closed").EnumerateArray().All(r => r.GetProperty("Requests").GetInt32() > 0 && r.GetProperty("Errors").GetInt32() == 0), Is.True);
            Assert.That(root.GetProperty("ReadRoundTripsPerRequest").GetDouble(), Is.EqualTo(1.0), "a cold session's request, counted on the wire");
            Assert.That(root.GetProperty("WriteRoundTripsPerRequest").GetDouble(), Is.EqualTo(1.0));
            Assert.That(root.GetProperty("WarmReadRoundTripsPerRequest").GetDouble(), Is.Zero, "a warm session's request reads nothing");
            Assert.That(root.GetProperty("WarmWriteRoundTripsPerRequest").GetDouble(), Is.EqualTo(1.0));
            Assert.That(root.GetProperty("StrictStale").GetInt32(), Is.Zero, "two replicas alternating in Strict");
            Assert.That(root.GetProperty("HeldEntries").GetDouble(), Is.EqualTo(root.GetProperty("HeldSessions").GetInt32()), "every warm session held");
            Assert.That(root.GetProperty("StreamsCompleted").GetInt32(), Is.EqualTo(root.GetProperty("Streams").GetInt32()));
            Assert.That(root.GetProperty("Targets").GetArrayLength(), Is.EqualTo(15));
        }
        finally
        {
            File.Delete(json);
        }
    }
}
