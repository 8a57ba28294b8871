using System.Globalization;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Benchmarks.Load;

/// <summary>The Release build of Mnemo as its own process, with what the benchmark reads from it.</summary>
internal sealed class ProxyInstance : IDisposable
{
    private readonly MnemoProcess _process;
    private readonly HttpClient _management;

    private ProxyInstance(MnemoProcess process, Uri url, Uri management)
    {
        _process = process;
        Url = url;
        _management = new HttpClient { BaseAddress = management };
    }

    public Uri Url { get; }

    public int Pid => _process.Id;

    public static async Task<ProxyInstance> StartAsync(Uri upstream, string redis, params string[] settings)
    {
        var port = Ports.Free();
        var management = Ports.Free();
        var process = MnemoProcess.StartBuilt(
        [
            $"--Mnemo:Upstream={upstream}",
            $"--ConnectionStrings:Redis={redis}",
            $"--Kestrel:Endpoints:Proxy:Url=http://127.0.0.1:{port}",
            $"--Kestrel:Endpoints:Management:Url=http://127.0.0.1:{management}",
            "--Logging:LogLevel:Default=Warning",
            .. settings,
        ]);
        var instance = new ProxyInstance(process, new Uri($"http://127.0.0.1:{port}"), new Uri($"http://127.0.0.1:{management}"));
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException("the proxy exited:\n" + process.Output);
            }

            try
            {
                if ((await instance._management.GetAsync("/healthz/ready")).IsSuccessStatusCode)
                {
                    return instance;
                }
            }
            catch (HttpRequestException)
            {
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("the proxy did not become ready:\n" + process.Output);
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Managed bytes allocated so far, from the proxy's own /metrics.</summary>
    public async Task<double> AllocatedBytesAsync()
    {
        var text = await _management.GetStringAsync("/metrics");
        var line = text.Split('\n').First(l => l.StartsWith("dotnet_gc_allocated_bytes_total ", StringComparison.Ordinal));
        return double.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture);
    }

    /// <summary>The proxy's /metrics text.</summary>
    public Task<string> MetricsAsync() => _management.GetStringAsync("/metrics");

    /// <summary>Until the session cache's subscription is confirmed (it serves from then on).</summary>
    /// <remarks>Returns at once when the benchmark runs with the cache off (<c>Mnemo__Cache__Enabled=false</c> in its environment, which the proxies inherit): a comparison run.</remarks>
    public async Task WaitForCacheAsync()
    {
        if (string.Equals(Environment.GetEnvironmentVariable("Mnemo__Cache__Enabled"), "false", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (MetricText.Value(await MetricsAsync(), "mnemo_cache_subscription_up") != 1)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("the session cache's subscription was not confirmed");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Sum and count of each stage histogram series, from the proxy's own /metrics.</summary>
    public async Task<Dictionary<string, (double Sum, double Count)>> StagesAsync()
    {
        var stages = new Dictionary<string, (double Sum, double Count)>();
        foreach (var line in (await _management.GetStringAsync("/metrics")).Split('\n'))
        {
            foreach (var (suffix, isSum) in new[] { ("_sum{", true), ("_count{", false) })
            {
                var at = line.IndexOf("mnemo_stage_duration_seconds" + suffix, StringComparison.Ordinal);
                if (at != 0)
                {
                    continue;
                }

                var stage = line.Split("stage=\"")[1].Split('"')[0];
                var value = double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
                var (sum, count) = stages.GetValueOrDefault(stage);
                stages[stage] = isSum ? (value, count) : (sum, value);
            }
        }

        return stages;
    }

    public double CpuSeconds => ProcStats.CpuSeconds(Pid);

    public double RssMb => ProcStats.RssBytes(Pid) / 1048576.0;

    public double PeakRssMb => ProcStats.PeakRssBytes(Pid) / 1048576.0;

    public void Dispose()
    {
        _process.Terminate();
        _process.WaitForExitAsync(TimeSpan.FromSeconds(40)).GetAwaiter().GetResult();
        _process.Dispose();
        _management.Dispose();
    }
}
