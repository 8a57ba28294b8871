using Mnemo.Proxy.Tests.Common;
using static Mnemo.Proxy.Tests.WriteBack.WriteBackTests;

namespace Mnemo.Proxy.Tests.Metrics;

/// <summary>What an SRE scrapes from the management port.</summary>
public sealed class MetricsTests : FunctionalTest
{
    private static readonly string[] s_stages =
        ["body_read", "history_read", "context_build", "upstream_headers", "upstream_first_byte", "upstream_total", "writeback"];

    [Test]
    public async Task AfterMemoryRequests_EveryStageHasObservations_AndPromtoolAcceptsTheExposition()
    {
        Upstream.StreamFixture = "stream-usage.sse";
        // With the session cache serving from the first request (else the reads counted depend on when its subscription
        // is confirmed): the first request reads Redis, the second is served from the copy its read and write left.
        await using var proxy = await ServingProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "metrics"));
        await WaitForTurnsAsync("metrics", 1);
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Again", stream: true), session: "metrics"));
        await WaitForTurnsAsync("metrics", 2);

        var text = await Eventually.ValueAsync(
            () => proxy.Management.GetStringAsync("/metrics"),
            t => Metric(t, "mnemo_writeback_total{outcome=\"written\"}") == 2,
            "two writes in the metrics");

        foreach (var stage in s_stages)
        {
            var count = Metric(text, $"mnemo_stage_duration_seconds_count{{stage=\"{stage}\",dialect=\"openai-chat\"}}");
            Assert.That(count, Is.EqualTo(2), stage);
            Assert.That(Metric(text, $"mnemo_stage_duration_seconds_sum{{stage=\"{stage}\",dialect=\"openai-chat\"}}"), Is.GreaterThan(0), stage);
        }

        Assert.That(Metric(text, "mnemo_overhead_seconds_count{dialect=\"openai-chat\"}"), Is.EqualTo(2));
        Assert.That(Metric(text, "mnemo_requests_total{dialect=\"openai-chat\",memory=\"empty\",outcome=\"completed\"}"), Is.EqualTo(1));
        Assert.That(Metric(text, "mnemo_requests_total{dialect=\"openai-chat\",memory=\"hit\",outcome=\"completed\"}"), Is.EqualTo(1));
        Assert.That(Metric(text, "mnemo_tokens_total{dialect=\"openai-chat\",direction=\"input\"}"), Is.EqualTo(38));
        Assert.That(Metric(text, "mnemo_tokens_total{dialect=\"openai-chat\",direction=\"output\"}"), Is.EqualTo(20));
        Assert.That(Metric(text, "mnemo_redis_round_trips_total{op=\"read\"}"), Is.EqualTo(1));
        Assert.That(Metric(text, "mnemo_cache_lookups_total{result=\"hit\"}"), Is.EqualTo(1));
        Assert.That(Metric(text, "mnemo_redis_round_trips_total{op=\"write\"}"), Is.EqualTo(2));
        Assert.That(Metric(text, "mnemo_writeback_queue_depth"), Is.Zero);
        Assert.That(text, Does.Not.Contain("metrics\""), "no session id in any label");
        Assert.That(text, Does.Not.Contain(Tenant(ApiKey)), "no tenant in any label");

        var (exitCode, output) = await Tool.RunAsync("promtool", ["check", "metrics"], stdin: text);
        Assert.That(exitCode, Is.Zero, output);
    }

    [Test]
    public async Task Metrics_AreServedOnlyOnTheManagementPort()
    {
        await using var proxy = await StartProxyAsync();
        var onProxyPort = await proxy.Client.GetAsync("/metrics");
        Assert.That(Upstream.LastRequest.Path, Is.EqualTo("/metrics"), "on the proxy port, /metrics is just a path forwarded upstream");
        Assert.That(await onProxyPort.Content.ReadAsStringAsync(), Does.Not.Contain("mnemo_"));

        // The split follows the listening socket, not the Host header.
        var forged = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        forged.Headers.Host = proxy.ManagementUrl.Authority;
        var forgedResponse = await proxy.Client.SendAsync(forged);
        Assert.That(await forgedResponse.Content.ReadAsStringAsync(), Does.Not.Contain("mnemo_"));
        Assert.That(Upstream.Requests, Has.Count.EqualTo(2));
    }
}
