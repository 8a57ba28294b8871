using System.Diagnostics;
using System.Net;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Resilience;

/// <summary>Redis down or slow: requests are still answered, without memory, within the read timeout; memory resumes by itself.</summary>
public sealed class RedisOutageTests : FunctionalTest
{
    private static readonly TimeSpan s_readTimeout = TimeSpan.FromMilliseconds(300);

    private static Dictionary<string, string?> Settings => new()
    {
        ["Mnemo:Redis:ReadTimeout"] = s_readTimeout.ToString(),
        ["Mnemo:Redis:BreakerMinimumThroughput"] = "2",
        ["Mnemo:Redis:BreakerSamplingDuration"] = "00:00:02",
        ["Mnemo:Redis:BreakerBreakDuration"] = "00:00:01",
        ["Mnemo:Redis:WriteRetryMaxDelay"] = "00:00:01",
        ["Mnemo:Redis:WriteRetries"] = "30",
    };

    [Test]
    public async Task RedisStopped_RequestsSucceedDegradedWithinTheTimeout_AndMemoryResumesWhenItIsBack()
    {
        await using var proxy = await StartProxyAsync(Settings);
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("before the outage"), session: "outage"));
        await WaitForTurnsAsync("outage", 1);

        await Redis.StopAsync();
        for (var i = 0; i < 5; i++)
        {
            var started = Stopwatch.GetTimestamp();
            var (response, body) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"during the outage {i}", stream: i % 2 == 0), session: "outage"));
            var elapsed = Stopwatch.GetElapsedTime(started);

            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(body, Is.Not.Empty);
            Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("degraded"));
            Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo("0"));
            Assert.That(Upstream.LastRequest.Messages(), Has.Count.EqualTo(2), "forwarded without memory");
            Assert.That(elapsed, Is.LessThan(s_readTimeout + TimeSpan.FromMilliseconds(200)), $"request {i} took {elapsed.TotalMilliseconds:F0} ms");
        }

        // Back, empty (no persistence): the proxy is not restarted.
        await Redis.StartAsync(CancellationToken.None);
        var resumed = await Eventually.ValueAsync(
            async () => Header((await SendAsync(proxy, ProxyHost.Chat(UserTurn("after"), session: "other"))).Response, "X-Mnemo-Memory"),
            memory => memory != "degraded",
            "memory to resume",
            TimeSpan.FromSeconds(20));
        Assert.That(resumed, Is.AnyOf("empty", "hit"));

        // Nothing lost: the turns answered during the outage were retried until Redis came back.
        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("outage"), t => t.Length == 5, "the outage turns to be written", TimeSpan.FromSeconds(20));
        Assert.That(
            turns.Select(t => t.GetProperty("messages")[0].GetProperty("content").GetString()),
            Is.EqualTo(Enumerable.Range(0, 5).Select(i => $"during the outage {i}")),
            "in the order they were answered");

        var (next, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("and now?"), session: "outage"));
        Assert.That(Header(next, "X-Mnemo-Memory"), Is.EqualTo("hit"));
        Assert.That(Header(next, "X-Mnemo-Context-Turns"), Is.EqualTo("5"));
    }

    [Test]
    public async Task RedisSlow_RequestsAreDegradedAfterTheReadTimeoutNotAfterRedis()
    {
        await using var relay = RedisRelay.Start(Redis);
        await using var proxy = await StartProxyAsync(Settings, redis: relay.ConnectionString);
        relay.Delay = TimeSpan.FromSeconds(2);

        for (var i = 0; i < 4; i++)
        {
            var started = Stopwatch.GetTimestamp();
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("slow"), session: "slow"));
            var elapsed = Stopwatch.GetElapsedTime(started);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("degraded"));
            Assert.That(elapsed, Is.LessThan(s_readTimeout + TimeSpan.FromMilliseconds(200)), $"request {i} took {elapsed.TotalMilliseconds:F0} ms");
        }

        relay.Delay = TimeSpan.Zero;
        await Eventually.ValueAsync(
            async () => Header((await SendAsync(proxy, ProxyHost.Chat(UserTurn("fast again"), session: "slow"))).Response, "X-Mnemo-Memory"),
            memory => memory == "hit",
            "memory to resume once Redis is fast again",
            TimeSpan.FromSeconds(20));
    }
}
