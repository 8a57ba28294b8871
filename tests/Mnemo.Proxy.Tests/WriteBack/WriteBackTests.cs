using System.Net;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.WriteBack;

/// <summary>The background writer: read-your-writes on one replica, retries, and draining on shutdown.</summary>
public sealed class WriteBackTests : FunctionalTest
{
    [Test]
    public async Task NextTurnSentTheMomentTheLastEnded_SeesItWhileItsWriteIsStillBeingRetried()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Redis:WriteRetryMaxDelay"] = "00:00:00.200" });
        // Writes are refused (out of memory) while reads still work: the first turn can only be pending.
        await Redis.Server.ConfigSetAsync("maxmemory-policy", "noeviction");
        await Redis.Server.ConfigSetAsync("maxmemory", "1");
        try
        {
            var (first, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "ryw"));
            Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            var (second, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("What did I just say?"), session: "ryw"));

            Assert.That(Header(second, "X-Mnemo-Memory"), Is.EqualTo("hit"));
            Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[]
            {
                "You are a helpful assistant.", "Hello!", "Hello! How can I assist you today?", "What did I just say?",
            }));
            Assert.That(await Redis.Db.KeyExistsAsync(TurnsKey("ryw")), Is.False, "nothing was written yet");
        }
        finally
        {
            await Redis.Server.ConfigSetAsync("maxmemory", "0");
        }

        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("ryw"), t => t.Length == 2, "both turns written once Redis accepts writes");
        Assert.That(turns.Select(t => t.GetProperty("messages")[0].GetProperty("content").GetString()), Is.EqualTo(new[] { "Hello!", "What did I just say?" }));
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(Metric(metrics, "mnemo_writeback_total{outcome=\"retried\"}"), Is.GreaterThan(0));
        Assert.That(Metric(metrics, "mnemo_writeback_total{outcome=\"written\"}"), Is.EqualTo(2));
        Assert.That(Metric(metrics, "mnemo_writeback_total{outcome=\"dropped\"}"), Is.Zero);
    }

    [TestCase(0)]
    [TestCase(2)]
    public async Task TurnThatCannotBeWrittenAfterTheRetries_IsDroppedCountedAndLogged_WithoutTheSessionOrPrompt(int retries)
    {
        // Writes are refused (out of memory) while reads still work.
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Mnemo:Redis:WriteRetries"] = retries.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Mnemo:Redis:WriteRetryDelay"] = "00:00:00.050",
        });
        await Redis.Server.ConfigSetAsync("maxmemory-policy", "noeviction");
        await Redis.Server.ConfigSetAsync("maxmemory", "1");
        try
        {
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("secret plans"), session: "doomed-session"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));

            var metrics = await Eventually.ValueAsync(
                () => proxy.Management.GetStringAsync("/metrics"),
                m => Metric(m, "mnemo_writeback_total{outcome=\"dropped\"}") == 1,
                "the drop to be counted");
            Assert.That(Metric(metrics, "mnemo_writeback_total{outcome=\"retried\"}"), Is.EqualTo(retries), "exactly the configured retries");
            Assert.That(Metric(metrics, "mnemo_writeback_total{outcome=\"written\"}"), Is.Zero);
            Assert.That(proxy.Logs.All, Does.Contain("could not be written after all retries and was dropped"));
            Assert.That(proxy.Logs.All, Does.Not.Contain("doomed-session").And.Not.Contain("secret plans"));
            Assert.That(await KeyCountAsync(), Is.Zero, "no partial data in Redis");
        }
        finally
        {
            await Redis.Server.ConfigSetAsync("maxmemory", "0");
        }
    }

    [Test]
    public async Task Shutdown_WritesQueuedTurnsBeforeStopping()
    {
        await using var relay = RedisRelay.Start(Redis);
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Redis:ReadTimeout"] = "00:00:05" }, redis: relay.ConnectionString);
        relay.Delay = TimeSpan.FromMilliseconds(300);
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("last words"), session: "drain"));

        await proxy.StopAsync();

        Assert.That(await Redis.Db.ListLengthAsync(TurnsKey("drain")), Is.EqualTo(1), "written before StopAsync returned");
    }

    [Test]
    public async Task Shutdown_LetsAnInFlightStreamFinish_AndWritesItsTurn()
    {
        Upstream.EventDelay = TimeSpan.FromMilliseconds(150);
        await using var proxy = await StartProxyAsync();
        using var response = await proxy.Client.SendAsync(ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "inflight"), HttpCompletionOption.ResponseHeadersRead);
        var reading = response.Content.ReadAsByteArrayAsync();
        await Eventually.TrueAsync(() => Task.FromResult(Upstream.EventTimes.Count >= 1), "the stream to start");

        var stopping = proxy.StopAsync();
        var body = await reading;
        await stopping;

        Assert.That(body, Is.EqualTo(Upstream.Fixture("stream.sse")));
        Assert.That(await Redis.Db.ListLengthAsync(TurnsKey("inflight")), Is.EqualTo(1));
    }

    internal static double Metric(string exposition, string series) => MetricText.Value(exposition, series);
}
