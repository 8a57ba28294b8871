using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Deployment;

/// <summary>
/// A real Prometheus scraping the running proxy's management port, with the alert rules the chart renders, the way
/// the ServiceMonitor and PrometheusRule set it up in a cluster (the namespace and pod labels the Operator would add
/// are set on the target).
/// </summary>
public sealed class PrometheusTests : FunctionalTest
{
    private static readonly Dictionary<string, string> s_targetLabels = new() { ["namespace"] = "llm", ["pod"] = "mnemo-0" };

    [Test]
    public async Task Prometheus_ScrapesTheProxy_AndAnswersHistogramQuantileOverTheStageDurations()
    {
        await using var proxy = await StartProxyAsync();
        await using var prometheus = await PrometheusServer.StartAsync(proxy.ManagementUrl.Authority, s_targetLabels, await AlertRulesAsync());
        await WaitForScrapeAsync(prometheus);

        // rate() needs two scrapes that differ: keep a conversation going while asking.
        const string Query = "histogram_quantile(0.5, sum by (le, stage) (rate(mnemo_stage_duration_seconds_bucket[1m])))";
        var turn = 0;
        var quantiles = await Eventually.ValueAsync(
            async () =>
            {
                await SendAsync(proxy, ProxyHost.Chat(UserTurn($"turn {turn}", stream: turn++ % 2 == 0), session: "scraped"));
                return (await prometheus.QueryAsync(Query)).ToDictionary(s => s.Labels["stage"], s => s.Value);
            },
            q => q.TryGetValue("history_read", out var v) && double.IsFinite(v) && q.ContainsKey("upstream_total"),
            "a median per stage from Prometheus",
            TimeSpan.FromSeconds(30));

        TestContext.Out.WriteLine($"{Query} after {turn} turns:");
        foreach (var (stage, seconds) in quantiles.OrderBy(q => q.Key))
        {
            TestContext.Out.WriteLine($"  stage={stage} {seconds}");
        }

        Assert.That(quantiles["history_read"], Is.GreaterThan(0).And.LessThan(0.25), "a loopback Redis read, under the read timeout");
        Assert.That(quantiles.Keys, Is.SupersetOf(new[] { "body_read", "history_read", "context_build", "upstream_headers", "upstream_first_byte", "upstream_total" }));

        var overhead = await prometheus.QueryAsync("histogram_quantile(0.5, sum by (le) (rate(mnemo_overhead_seconds_bucket[1m])))");
        Assert.That(overhead.Single().Value, Is.GreaterThan(0).And.LessThan(1));

        // The chart's alert rules load and evaluate without error against these series.
        var rules = await Eventually.ValueAsync(
            async () =>
            {
                using var document = await prometheus.GetAsync("/api/v1/rules");
                return document.RootElement.GetProperty("data").GetProperty("groups").EnumerateArray()
                    .SelectMany(g => g.GetProperty("rules").EnumerateArray())
                    .Select(r => (Name: r.GetProperty("name").GetString()!, Health: r.GetProperty("health").GetString()!, Error: r.TryGetProperty("lastError", out var e) ? e.GetString() : null))
                    .ToList();
            },
            r => r.Count == 5 && r.All(x => x.Health != "unknown"),
            "the alert rules to be evaluated");
        Assert.That(rules.Where(r => r.Health != "ok"), Is.Empty);
    }

    [Test]
    public async Task WriteBackDropAlert_FiresInPrometheus_WhenATurnCannotBeWritten()
    {
        // No retries, and Redis refusing writes (out of memory) while it answers reads: the turn's one write is refused
        // and the turn dropped at once. (A turn answered while Redis is unreachable is not dropped: it waits in the queue.)
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Mnemo:Redis:WriteRetries"] = "0",
            ["Mnemo:Redis:ReadTimeout"] = "00:00:00.200",
        });
        await using var prometheus = await PrometheusServer.StartAsync(proxy.ManagementUrl.Authority, s_targetLabels, await AlertRulesAsync());
        await WaitForScrapeAsync(prometheus);
        Assert.That((await prometheus.QueryAsync("mnemo_writeback_total{outcome=\"dropped\"}")).Single().Value, Is.Zero, "the counter is exported at zero before any drop");

        await Redis.Server.ConfigSetAsync("maxmemory-policy", "noeviction");
        await Redis.Server.ConfigSetAsync("maxmemory", "1");
        JsonElement alert;
        try
        {
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("lost"), session: "dropped"));
            Assert.That(response.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.OK));
            alert = await FiringAsync(prometheus);
        }
        finally
        {
            await Redis.Server.ConfigSetAsync("maxmemory", "0");
        }

        TestContext.Out.WriteLine(alert.GetRawText());
        Assert.That(alert.GetProperty("labels").GetProperty("severity").GetString(), Is.EqualTo("critical"));
        Assert.That(alert.GetProperty("labels").GetProperty("namespace").GetString(), Is.EqualTo("llm"));
        Assert.That(alert.GetProperty("annotations").GetProperty("description").GetString(), Does.StartWith("Turns in llm could not be written"));
    }

    private static Task<JsonElement> FiringAsync(PrometheusServer prometheus) => Eventually.ValueAsync(
        async () =>
        {
            using var document = await prometheus.GetAsync("/api/v1/alerts");
            return document.RootElement.GetProperty("data").GetProperty("alerts").EnumerateArray()
                .Where(a => a.GetProperty("labels").GetProperty("alertname").GetString() == "MnemoWriteBackDropping")
                .Select(a => a.Clone())
                .FirstOrDefault();
        },
        a => a.ValueKind == JsonValueKind.Object && a.GetProperty("state").GetString() == "firing",
        "MnemoWriteBackDropping to fire",
        TimeSpan.FromSeconds(30));

    /// <summary>The chart's PrometheusRule for the release namespace <c>llm</c>, as a rules file.</summary>
    private static async Task<string> AlertRulesAsync()
    {
        var manifests = await Helm.TemplateAsync(Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", "monitoring-values.yaml"));
        return Manifests.RulesFile(manifests.Single("PrometheusRule"));
    }

    private static Task WaitForScrapeAsync(PrometheusServer prometheus) =>
        Eventually.TrueAsync(
            async () => (await prometheus.QueryAsync("up{job=\"mnemo\"}")).SingleOrDefault().Value == 1,
            "Prometheus to scrape the management port",
            TimeSpan.FromSeconds(30));
}
