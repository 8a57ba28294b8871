using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// A real <c>prometheus</c> server (the Debian package) on a free loopback port, scraping one target every second
/// and evaluating a rules file every second; its data in a temporary directory, removed with it.
/// </summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;
    private readonly ConcurrentQueue<string> _output = new();

    private PrometheusServer(Process process, string directory, Uri url)
    {
        _process = process;
        _directory = directory;
        Url = url;
        Client = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(10) };
        _process.OutputDataReceived += (_, e) => Capture(e.Data);
        _process.ErrorDataReceived += (_, e) => Capture(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public Uri Url { get; }

    public HttpClient Client { get; }

    public string Output => string.Join('\n', _output);

    /// <summary>Starts Prometheus scraping <paramref name="target"/> (host:port) with the given target labels.</summary>
    public static async Task<PrometheusServer> StartAsync(string target, IReadOnlyDictionary<string, string> labels, string? rules = null)
    {
        var directory = Directory.CreateTempSubdirectory("mnemo-prometheus-").FullName;
        var ruleFiles = new List<string>();
        if (rules is not null)
        {
            ruleFiles.Add(Path.Combine(directory, "rules.yaml"));
            await File.WriteAllTextAsync(ruleFiles[0], rules);
        }

        // JSON is YAML: the configuration is written with a JSON serializer, so no value needs escaping by hand.
        var configuration = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["global"] = new Dictionary<string, string> { ["scrape_interval"] = "1s", ["scrape_timeout"] = "900ms", ["evaluation_interval"] = "1s" },
            ["scrape_configs"] = new[]
            {
                new Dictionary<string, object>
                {
                    ["job_name"] = "mnemo",
                    ["metrics_path"] = "/metrics",
                    ["static_configs"] = new[] { new Dictionary<string, object> { ["targets"] = new[] { target }, ["labels"] = labels } },
                },
            },
            ["rule_files"] = ruleFiles,
        });
        var configFile = Path.Combine(directory, "prometheus.yml");
        await File.WriteAllTextAsync(configFile, configuration);

        var port = Ports.Free();
        var info = new ProcessStartInfo(Tool.Path("prometheus"))
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = directory,
        };
        foreach (var argument in new[]
        {
            $"--config.file={configFile}", $"--storage.tsdb.path={Path.Combine(directory, "data")}",
            $"--web.listen-address=127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}", "--log.level=warn",
        })
        {
            info.ArgumentList.Add(argument);
        }

        var server = new PrometheusServer(Process.Start(info) ?? throw new InvalidOperationException("prometheus did not start."), directory, new Uri($"http://127.0.0.1:{port}"));
        try
        {
            await Eventually.TrueAsync(
                async () =>
                {
                    Assert.That(server._process.HasExited, Is.False, () => $"prometheus exited:\n{server.Output}");
                    try
                    {
                        return (await server.Client.GetAsync("/-/ready")).IsSuccessStatusCode;
                    }
                    catch (HttpRequestException)
                    {
                        return false;
                    }
                },
                "prometheus to be ready",
                TimeSpan.FromSeconds(30));
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    /// <summary>An instant query through the HTTP API: the result vector's samples, labels and value.</summary>
    public async Task<IReadOnlyList<(Dictionary<string, string> Labels, double Value)>> QueryAsync(string promql)
    {
        using var document = await GetAsync($"/api/v1/query?query={Uri.EscapeDataString(promql)}");
        var data = document.RootElement.GetProperty("data");
        Assert.That(data.GetProperty("resultType").GetString(), Is.EqualTo("vector"), promql);
        return data.GetProperty("result").EnumerateArray()
            .Select(r => (
                r.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
                double.Parse(r.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture)))
            .ToList();
    }

    /// <summary>GET on the HTTP API; fails the test unless Prometheus answers <c>"status": "success"</c>.</summary>
    public async Task<JsonDocument> GetAsync(string path)
    {
        var response = await Client.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(response.IsSuccessStatusCode, Is.True, text);
        var document = JsonDocument.Parse(text);
        Assert.That(document.RootElement.GetProperty("status").GetString(), Is.EqualTo("success"), text);
        return document;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private void Capture(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }
}
