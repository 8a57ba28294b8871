using System.Net;
using Mnemo.Proxy.Tests.Common;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.WriteBack;

/// <summary>Turns that waited for Redis go out together when it is back: one pipelined round trip, not one per turn.</summary>
public sealed class BatchedRetryTests : FunctionalTest
{
    private const int Sessions = 10;

    [Test]
    public async Task TurnsAnsweredWhileRedisWasDown_AreWrittenInOneRoundTrip_WhenItIsBack()
    {
        await using var relay = RedisRelay.StartCounting(Redis);
        await using var proxy = await StartProxyAsync(redis: relay.ConnectionString);
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("before"), session: "warm"));
        await WaitForTurnsAsync("warm", 1);

        await Redis.StopAsync();
        for (var i = 0; i < Sessions; i++)
        {
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"during {i}"), session: $"batch-{i}"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }

        relay.Reset();
        await Redis.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(
            async () =>
            {
                try
                {
                    for (var i = 0; i < Sessions; i++)
                    {
                        if (await Redis.Db.ListLengthAsync(TurnsKey($"batch-{i}")) != 1)
                        {
                            return false;
                        }
                    }

                    return true;
                }
                catch (RedisConnectionException)
                {
                    // The test's own client has not reconnected yet.
                    return false;
                }
            },
            "every turn written once Redis is back",
            TimeSpan.FromSeconds(15));

        var writes = relay.DataRoundTrips.Where(t => t.Commands.Any(c => c is "EVALSHA" or "EVAL")).ToList();
        // A second one only when the first came before the script was loaded again (NOSCRIPT: each turn then goes as EVAL).
        Assert.That(writes, Has.Count.InRange(1, 2), string.Join(" | ", writes));
        Assert.That(writes[0].Commands.Count(c => c is "EVALSHA" or "EVAL"), Is.EqualTo(Sessions), string.Join(" | ", writes));
        Assert.That(WriteBackTests.Metric(await proxy.Management.GetStringAsync("/metrics"), "mnemo_writeback_total{outcome=\"dropped\"}"), Is.Zero);
    }
}
