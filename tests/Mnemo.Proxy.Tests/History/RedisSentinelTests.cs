using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Tests.Common;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.History;

/// <summary>
/// Mnemo behind real Redis Sentinels (one master, one replica, three sentinels), named only by the sentinels and the
/// service: the store, a conversation, and the master killed under traffic through the real proxy.
/// </summary>
public sealed class RedisSentinelTests : FunctionalTest
{
    // Started once for the tests that leave it as it was; a failover test kills the master, so it starts its own.
    private RedisSentinels? _shared;

    [OneTimeTearDown]
    public async Task StopSentinelsAsync()
    {
        if (_shared is not null)
        {
            await _shared.DisposeAsync();
        }
    }

    [Test]
    public async Task Conversation_IsStoredOnTheMasterTheSentinelsName_AndReplicated()
    {
        var sentinels = await SharedAsync();
        await using var proxy = await StartProxyAsync(FailoverScenario.Settings("Replica"), redis: sentinels.ConnectionString);
        for (var turn = 1; turn <= 3; turn++)
        {
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"question {turn}", stream: turn == 2), session: "watched"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo(turn == 1 ? "empty" : "hit"));
            Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo($"{turn - 1}"));
        }

        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[]
        {
            "You are a helpful assistant.", "question 1", "Hello! How can I assist you today?", "question 2",
            "Hello! How can I assist you today?", "question 3",
        }));
        await Eventually.ValueAsync(() => sentinels.Master.Db.ListLengthAsync(TurnsKey("watched")), n => n == 3, "three turns on the master");
        Assert.That(FailoverScenario.Questions(await sentinels.Master.Db.ListRangeAsync(TurnsKey("watched"))), Is.EqualTo(new[] { "question 1", "question 2", "question 3" }));
        Assert.That(await sentinels.Master.Db.KeyTimeToLiveAsync(MetaKey("watched")), Is.GreaterThan(TimeSpan.FromHours(23)));
        await Eventually.ValueAsync(() => sentinels.Replica.Db.ListLengthAsync(TurnsKey("watched")), n => n == 3, "three turns on the replica");
    }

    [Test]
    public async Task Store_AppendsReadsDedupesAndRefreshesExpiry_ThroughTheSentinels()
    {
        var sentinels = await SharedAsync();
        await using var connection = new RedisConnection(ConfigurationOptions.Parse(sentinels.ConnectionString), NullLogger<RedisConnection>.Instance);
        await connection.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => Task.FromResult(connection.IsConnected), "the connection");
        var store = new RedisHistoryStore(connection, new MnemoMetrics(), Options.Create(new StoreOptions { Ttl = TimeSpan.FromMinutes(10) }));
        var session = new SessionKey("tenant", "store");

        var first = Turns.Make(session, "q1");
        Assert.That(await store.AppendAsync(first, default), Is.EqualTo(AppendResult.Written));
        Assert.That(await store.AppendAsync(first, default), Is.EqualTo(AppendResult.Duplicate), "a retried turn is not stored twice");
        Assert.That(await store.AppendAsync(Turns.Make(session, "q2"), default), Is.EqualTo(AppendResult.Written));
        Assert.That(await store.AppendAsync(first, default), Is.EqualTo(AppendResult.Duplicate), "still known after a later turn");
        Assert.That(Turns.Questions(await store.ReadAsync(session, 10, default)), Is.EqualTo(new[] { "q1", "q2" }));

        var master = sentinels.Master.Db;
        RedisKey turns = RedisKeys.Turns(session), meta = RedisKeys.Meta(session);
        Assert.That(await master.ListLengthAsync(turns), Is.EqualTo(2), "written to the master");
        Assert.That(await master.KeyTimeToLiveAsync(turns), Is.GreaterThan(TimeSpan.FromMinutes(9)));
        await master.KeyExpireAsync(turns, TimeSpan.FromSeconds(5));
        await master.KeyExpireAsync(meta, TimeSpan.FromSeconds(5));
        await store.ReadAsync(session, 10, default);
        await Eventually.TrueAsync(async () => await master.KeyTimeToLiveAsync(meta) > TimeSpan.FromMinutes(9), "the read to refresh the expiry");
        Assert.That(await master.KeyTimeToLiveAsync(turns), Is.GreaterThan(TimeSpan.FromMinutes(9)));
    }

    [TestCase("Replica")]
    [TestCase("Strict")]
    public async Task MasterKilledUnderTraffic_RequestsSucceedMemoryReturnsAndEveryCompletedTurnIsStored(string consistency)
    {
        await using var sentinels = await RedisSentinels.StartAsync();
        await using var proxy = await StartProxyAsync(FailoverScenario.Settings(consistency), redis: sentinels.ConnectionString);
        await FailoverScenario.MasterKilledAsync(
            $"sentinel, {consistency}",
            proxy,
            Upstream,
            [.. Enumerable.Range(0, 6).Select(i => $"failover-{i}")],
            _ => Task.FromResult(sentinels.Master),
            () => sentinels.WaitUntilMasterAsync(sentinels.Replica),
            _ => Task.FromResult(sentinels.Replica.Server),
            session => sentinels.Replica.Db.ListRangeAsync(TurnsKey(session)));
    }

    private async Task<RedisSentinels> SharedAsync()
    {
        _shared ??= await RedisSentinels.StartAsync();
        await _shared.Master.FlushAsync();
        return _shared;
    }
}
