using System.Net;
using Mnemo.Proxy.Tests.Common;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.WriteBack;

/// <summary>
/// Turns that waited for Redis go out together when it is back: one pipelined round trip, not one per turn, and one
/// script call per session, not one per turn.
/// </summary>
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
        await OnceBackAsync(async () =>
        {
            for (var i = 0; i < Sessions; i++)
            {
                if (await Redis.Db.ListLengthAsync(TurnsKey($"batch-{i}")) != 1)
                {
                    return false;
                }
            }

            return true;
        });

        var writes = relay.DataRoundTrips.Where(t => t.Commands.Any(c => c is "EVALSHA" or "EVAL")).ToList();
        // A second one only when the first came before the script was loaded again (NOSCRIPT: each turn then goes as EVAL).
        Assert.That(writes, Has.Count.InRange(1, 2), string.Join(" | ", writes));
        Assert.That(writes[0].Commands.Count(c => c is "EVALSHA" or "EVAL"), Is.EqualTo(Sessions), string.Join(" | ", writes));
        Assert.That(WriteBackTests.Metric(await proxy.Management.GetStringAsync("/metrics"), "mnemo_writeback_total{outcome=\"dropped\"}"), Is.Zero);
    }

    [Test]
    public async Task TurnsOfOneSessionAnsweredWhileRedisWasDown_AreWrittenByOneCall_InOrder()
    {
        const int turns = 12;
        await using var relay = RedisRelay.StartCounting(Redis);
        await using var proxy = await StartProxyAsync(redis: relay.ConnectionString);
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("before"), session: "hot"));
        await WaitForTurnsAsync("hot", 1);

        // The test's Redis keeps nothing across a restart: the session holds exactly the turns written after it.
        await Redis.StopAsync();
        for (var i = 0; i < turns; i++)
        {
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"during {i}"), session: "hot"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }

        relay.Reset();
        await Redis.StartAsync(CancellationToken.None);
        await OnceBackAsync(async () => await Redis.Db.ListLengthAsync(TurnsKey("hot")) == turns);

        // One call for the session's twelve turns (two when the first met NOSCRIPT and went again as EVAL).
        var calls = relay.DataRoundTrips.SelectMany(t => t.Commands).Count(c => c is "EVALSHA" or "EVAL");
        Assert.That(calls, Is.InRange(1, 2), string.Join(" | ", relay.DataRoundTrips));
        var stored = (await Redis.Db.ListRangeAsync(TurnsKey("hot"))).Select(v => (string)v!).ToArray();
        for (var i = 0; i < turns; i++)
        {
            Assert.That(stored[i], Does.Contain($"\"during {i}\""), $"turn {i} in its place");
        }

        Assert.That((long)await Redis.Db.HashGetAsync(MetaKey("hot"), "n"), Is.EqualTo(turns));
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"written\"}"), Is.EqualTo(1 + turns));
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"dropped\"}"), Is.Zero);
    }

    /// <summary>Until <paramref name="written"/> holds once Redis is back (15 s at most).</summary>
    private static Task OnceBackAsync(Func<Task<bool>> written) => Eventually.TrueAsync(
        async () =>
        {
            try
            {
                return await written();
            }
            catch (RedisConnectionException)
            {
                // The test's own client has not reconnected yet.
                return false;
            }
        },
        "every turn written once Redis is back",
        TimeSpan.FromSeconds(15));
}
