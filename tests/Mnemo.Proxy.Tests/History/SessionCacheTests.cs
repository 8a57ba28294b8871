using System.Net;
using Mnemo.Proxy.Tests.Admin;
using Mnemo.Proxy.Tests.Common;
using Mnemo.Proxy.Tests.WriteBack;

namespace Mnemo.Proxy.Tests.History;

/// <summary>
/// The session cache against a real redis-server: warm sessions read without a round trip, and the copies of two
/// replicas on one Redis kept coherent by the write scripts' announcements.
/// </summary>
[TestFixture]
public sealed class SessionCacheTests : FunctionalTest
{
    [Test]
    public async Task WarmSession_IsServedWithoutAReadRoundTrip_AndEveryTurnIsInIt()
    {
        await using var relay = RedisRelay.Start(Redis);
        await using var proxy = await ServingProxyAsync(redis: relay.ConnectionString);

        // The first request reads Redis (an empty session) and caches what it read; the write of its turn, the session's
        // only one, is applied to that copy; from then on no request of the session reads Redis.
        await AskAsync(proxy, "s", 0);
        await WaitForTurnsAsync("s", 1);
        await AskAsync(proxy, "s", 1);
        await WaitForTurnsAsync("s", 2);
        relay.Reset();
        for (var i = 2; i < 8; i++)
        {
            await AskAsync(proxy, "s", i);
            Assert.That(UserMessages(), Is.EqualTo(Enumerable.Range(0, i + 1).Select(n => $"q{n}")), "every earlier turn, in order");

            // Each turn written before the next is asked: turns queued behind a write in flight would share one script
            // call (the writer catches a session up in one call), and the count below is of one call per turn.
            await WaitForTurnsAsync("s", i + 1);
        }

        var commands = relay.DataRoundTrips.SelectMany(t => t.Commands).ToList();
        Assert.That(commands.Count(c => c == "LRANGE"), Is.Zero, "no history read reached Redis for the warm session: " + string.Join(" ", commands));
        Assert.That(commands.Count(c => c is "EVALSHA" or "EVAL"), Is.EqualTo(6), "one write per turn");
        var metrics = await MetricsAsync(proxy);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_cache_lookups_total{result=\"hit\"}"), Is.GreaterThanOrEqualTo(6));
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_redis_round_trips_total{op=\"read\"}"), Is.EqualTo(1), "the first request's read only");
    }

    [Test]
    public async Task AnotherReplicasWrite_DropsTheCopy_AndTheNextRequestSeesIt()
    {
        await using var a = await ServingProxyAsync();
        await using var b = await ServingProxyAsync();
        await WarmAsync(a, "s", 0);

        await AskAsync(b, "s", 3);
        await WaitForTurnsAsync("s", 4);
        await Eventually.ValueAsync(() => MetricsAsync(a), m => WriteBackTests.Metric(m, "mnemo_cache_invalidations_total{reason=\"announced\"}") >= 1, "a to drop its copy");
        await AskAsync(a, "s", 4);
        Assert.That(UserMessages(), Is.EqualTo(new[] { "q0", "q1", "q2", "q3", "q4" }), "a sees b's turn");

        var metrics = await MetricsAsync(a);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_cache_invalidation_delay_seconds_count"), Is.GreaterThanOrEqualTo(1));
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_cache_invalidation_delay_seconds_sum"), Is.LessThan(5), "announcements arrive within seconds on loopback");
    }

    [Test]
    public async Task TwoReplicasAlternating_Strict_NeverServeAStaleWindow()
    {
        var strict = new Dictionary<string, string?> { ["Mnemo:Memory:Consistency"] = "Strict", ["Mnemo:Memory:MaxContextTurns"] = "4" };
        await using var a = await ServingProxyAsync(strict);
        await using var b = await ServingProxyAsync(strict);
        const int Alternations = 1000;
        var stale = 0;
        for (var i = 0; i < Alternations; i++)
        {
            await AskAsync(i % 2 == 0 ? a : b, "s", i);
            var users = UserMessages();
            if (i > 0 && (users.Count < 2 || users[^2] != $"q{i - 1}"))
            {
                stale++;
            }
        }

        Assert.That(stale, Is.Zero, "every request saw the turn the other replica answered just before");
    }

    [Test]
    public async Task Erase_DropsTheCopy_OnThisReplicaAtOnce_AndOnAnotherByItsAnnouncement()
    {
        // A short clock-skew allowance: the tombstone refuses turns answered up to then.
        var settings = AdminApiClient.Settings(("Mnemo:Admin:ClockSkew", "00:00:00.200"));
        await using var a = await ServingProxyAsync(settings);
        await using var b = await ServingProxyAsync(settings);
        var path = $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions/s";

        await WarmAsync(a, "s", 0);
        var erase = await AdminApiClient.CallAsync(a.Management, HttpMethod.Delete, path);
        Assert.That(erase.Response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        // No wait: the erasing replica's copy went with the erase call.
        await AskAsync(a, "s", 10);
        Assert.That(UserMessages(), Is.EqualTo(new[] { "q10" }), "the erasing replica serves no history");

        // Past the tombstone's time, so that b's turns are stored again.
        var tombstone = (long)await Redis.Db.HashGetAsync(MetaKey("s"), "e");
        while (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() <= tombstone + 5)
        {
            await Task.Delay(20);
        }

        await WarmAsync(b, "s", 20);
        erase = await AdminApiClient.CallAsync(a.Management, HttpMethod.Delete, path);
        Assert.That(erase.Response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await Eventually.ValueAsync(() => MetricsAsync(b), m => WriteBackTests.Metric(m, "mnemo_cache_invalidations_total{reason=\"erased\"}") >= 1, "b to drop its copy");
        await AskAsync(b, "s", 30);
        Assert.That(UserMessages(), Is.EqualTo(new[] { "q30" }), "the other replica serves none of the erased turns");
    }

    /// <summary>Three turns of a session on one replica, each written before the next, the last one served from its cache (asserted).</summary>
    private async Task WarmAsync(ProxyHost proxy, string session, int first)
    {
        var stored = await Redis.Db.ListLengthAsync(TurnsKey(session));
        for (var i = 0; i < 3; i++)
        {
            await AskAsync(proxy, session, first + i);
            await WaitForTurnsAsync(session, stored + i + 1);
        }

        Assert.That(WriteBackTests.Metric(await MetricsAsync(proxy), "mnemo_cache_lookups_total{result=\"hit\"}"), Is.GreaterThanOrEqualTo(1), "warm");
    }

    [Test]
    public async Task LostSubscription_ClearsAndBypassesTheCache_UntilItIsConfirmedAgain()
    {
        await using var a = await ServingProxyAsync();
        await using var b = await ServingProxyAsync();
        await WarmAsync(a, "s", 0);

        // Every subscriber connection is cut: an announcement made before a subscription is back reaches no one (SE.Redis
        // may resubscribe within milliseconds, so b's may or may not reach a: either way a must not serve its old copy).
        await Redis.Server.ExecuteAsync("CLIENT", "KILL", "TYPE", "pubsub");
        await AskAsync(b, "s", 3);
        await WaitForTurnsAsync("s", 4);
        await Eventually.TrueAsync(
            () => Task.FromResult(a.Logs.Lines.Any(l => l.Contains("Session cache cleared and bypassed", StringComparison.Ordinal))),
            "a to log that it noticed the loss");
        var metrics = await MetricsAsync(a);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_cache_entries"), Is.Zero, "the copy is gone: cleared when the subscription dropped, or dropped on b's announcement");
        await AskAsync(a, "s", 4);
        Assert.That(UserMessages(), Is.EqualTo(new[] { "q0", "q1", "q2", "q3", "q4" }), "a does not serve its old copy");

        await CacheServingAsync(a);
        await WaitForTurnsAsync("s", 5);
        await AskAsync(a, "s", 5);
        await WaitForTurnsAsync("s", 6);
        await AskAsync(a, "s", 6);
        metrics = await MetricsAsync(a);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_cache_lookups_total{result=\"hit\"}"), Is.GreaterThanOrEqualTo(2), "warm again once confirmed");
        Assert.That(UserMessages(), Is.EqualTo(new[] { "q0", "q1", "q2", "q3", "q4", "q5", "q6" }));
    }

    [Test]
    public async Task RedisRestart_ClearsTheCache_AndTheRestartedSessionIsNotServedFromTheOldCopy()
    {
        await using var a = await ServingProxyAsync();
        await WarmAsync(a, "s", 0);

        // Redis comes back empty (no persistence in the tests): the session's keys are gone.
        await Redis.StopAsync();
        await Eventually.ValueAsync(() => MetricsAsync(a), m => WriteBackTests.Metric(m, "mnemo_cache_subscription_up") == 0, "the subscription to be reported down");
        await Redis.StartAsync(CancellationToken.None);
        await CacheServingAsync(a);
        await AskAsync(a, "s", 3);
        Assert.That(UserMessages(), Is.EqualTo(new[] { "q3" }), "nothing of the session that Redis lost");
    }

    [Test]
    public async Task Entries_ExpireWithTheirKeys()
    {
        await using var a = await ServingProxyAsync(new Dictionary<string, string?> { ["Mnemo:Memory:Ttl"] = "00:00:02" });
        await WarmAsync(a, "s", 0);
        await Eventually.TrueAsync(async () => !await Redis.Db.KeyExistsAsync(TurnsKey("s")), "the session's keys to expire", TimeSpan.FromSeconds(5));
        await AskAsync(a, "s", 3);
        Assert.That(UserMessages(), Is.EqualTo(new[] { "q3" }), "the cached copy did not outlive the keys");
    }

    [Test]
    public async Task SizeLimit_BoundsTheBytesHeld()
    {
        const long Limit = 1024 * 1024;
        await using var a = await ServingProxyAsync(new Dictionary<string, string?> { ["Mnemo:Cache:SizeLimit"] = Limit.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var big = new string('x', 30_000);
        for (var round = 0; round < 2; round++)
        {
            await Task.WhenAll(Enumerable.Range(0, 60).Select(s => AskAsync(a, $"s{s}", round, big)));
            await Eventually.ValueAsync(() => Redis.Db.ListLengthAsync(TurnsKey("s59")), n => n == round + 1, "the round's turns");
        }

        await Task.WhenAll(Enumerable.Range(0, 60).Select(s => AskAsync(a, $"s{s}", 2, big)));
        var metrics = await MetricsAsync(a);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_cache_bytes"), Is.GreaterThan(0).And.LessThanOrEqualTo(Limit));
    }

    [Test]
    public async Task TurnsQueuedBehindASlowWrite_GoOutInOneCall_AndTheCopyStaysWarm()
    {
        // Redis 100 ms away each way: while the first turn's write is on its way, the next turns queue behind it, and
        // go out together in one call, whose announcements (one per turn) can come before its reply.
        await using var relay = RedisRelay.Start(Redis, TimeSpan.FromMilliseconds(100));
        await using var proxy = await ServingProxyAsync(RedisRelay.PatientReads, relay.ConnectionString);
        await AskAsync(proxy, "s", 0);
        await WaitForTurnsAsync("s", 1);
        await Eventually.ValueAsync(() => MetricsAsync(proxy), m => WriteBackTests.Metric(m, "mnemo_writeback_queue_depth") == 0, "the first write done");
        relay.Reset();

        for (var i = 1; i <= 5; i++)
        {
            await AskAsync(proxy, "s", i);
            Assert.That(UserMessages(), Is.EqualTo(Enumerable.Range(0, i + 1).Select(n => $"q{n}")), "every earlier turn, in order");
        }

        await WaitForTurnsAsync("s", 6);
        await Eventually.ValueAsync(() => MetricsAsync(proxy), m => WriteBackTests.Metric(m, "mnemo_writeback_queue_depth") == 0, "every write done");
        var writes = relay.DataRoundTrips.SelectMany(t => t.Commands).Count(c => c is "EVALSHA" or "EVAL");
        Assert.That(writes, Is.InRange(2, 4), "q1 alone, then those queued behind it together: " + string.Join(" | ", relay.DataRoundTrips));

        relay.Reset();
        await AskAsync(proxy, "s", 6);
        Assert.That(UserMessages(), Is.EqualTo(Enumerable.Range(0, 7).Select(n => $"q{n}")));
        var metrics = await MetricsAsync(proxy);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_cache_invalidations_total{reason=\"announced\"}"), Is.Zero, "its own turns' announcements do not drop the copy");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_cache_invalidations_total{reason=\"own_write\"}"), Is.Zero);
        Assert.That(relay.DataRoundTrips.SelectMany(t => t.Commands).Count(c => c == "LRANGE"), Is.Zero, "still served from the copy");
    }

    [Test]
    public async Task Disabled_ReadsRedisForEveryRequest()
    {
        await using var a = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Cache:Enabled"] = "false" });
        for (var i = 0; i < 4; i++)
        {
            await AskAsync(a, "s", i);
            await WaitForTurnsAsync("s", i + 1);
        }

        var metrics = await MetricsAsync(a);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_redis_round_trips_total{op=\"read\"}"), Is.EqualTo(4));
        Assert.That(new[] { "hit", "miss", "bypass" }.Sum(r => WriteBackTests.Metric(metrics, $"mnemo_cache_lookups_total{{result=\"{r}\"}}")), Is.Zero, "no cache, no lookups");
    }

    private static async Task AskAsync(ProxyHost proxy, string session, int i, string padding = "")
    {
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"q{i}{padding}"), session));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    /// <summary>The user messages of the request the upstream got last (the history and the new one), in order.</summary>
    private List<string> UserMessages() =>
        [.. Upstream.LastRequest.Messages().Where(m => m.Role == "user").Select(m => m.Content)];

    private static Task<string> MetricsAsync(ProxyHost proxy) => proxy.Management.GetStringAsync("/metrics");
}
