using System.Globalization;
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
/// Mnemo on a real Redis Cluster (three masters, three replicas): the hash-tagged layout, the store, a master killed
/// and a slot migrated under traffic through the real proxy.
/// </summary>
public sealed class RedisClusterTests : FunctionalTest
{
    private static readonly Dictionary<string, string?> s_settings = FailoverScenario.Settings("Replica");

    // Started once for the tests that leave it healthy; a failover test kills a node, so it starts its own.
    private RedisCluster? _shared;

    [OneTimeTearDown]
    public async Task StopClusterAsync()
    {
        if (_shared is not null)
        {
            await _shared.DisposeAsync();
        }
    }

    [Test]
    public async Task Conversation_BothKeysOfEachSessionShareOneSlotOnOneMaster()
    {
        var cluster = await SharedAsync();
        await using var proxy = await StartProxyAsync(s_settings, redis: cluster.ConnectionString);
        var sessions = Enumerable.Range(0, 8).Select(i => $"slot-{i}").ToArray();
        for (var turn = 1; turn <= 3; turn++)
        {
            foreach (var session in sessions)
            {
                var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"{session} question {turn}", stream: turn == 2), session: session));
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
                Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo(turn == 1 ? "empty" : "hit"));
                Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo($"{turn - 1}"));
            }
        }

        var masters = new HashSet<int>();
        foreach (var session in sessions)
        {
            await Eventually.ValueAsync(() => cluster.Db.ListLengthAsync(TurnsKey(session)), n => n == 3, $"{session}: three turns");
        }

        // Each master's own keys (SCAN is answered by the node asked, never redirected).
        var keysByMaster = new Dictionary<int, HashSet<string>>();
        foreach (var node in await MastersAsync(cluster))
        {
            keysByMaster[node.Port] = [.. cluster.Server(node).Keys(pattern: "mnemo:*").Select(k => (string)k!)];
        }

        foreach (var session in sessions)
        {
            var turnsSlot = (long)await cluster.Server(cluster.Nodes[0]).ExecuteAsync("CLUSTER", "KEYSLOT", TurnsKey(session));
            var metaSlot = (long)await cluster.Server(cluster.Nodes[0]).ExecuteAsync("CLUSTER", "KEYSLOT", MetaKey(session));
            Assert.That(metaSlot, Is.EqualTo(turnsSlot), $"{session}: CLUSTER KEYSLOT of both keys");

            var holders = keysByMaster.Where(m => m.Value.Contains(TurnsKey(session)) || m.Value.Contains(MetaKey(session))).ToArray();
            Assert.That(holders.Select(m => m.Value.Contains(TurnsKey(session)) && m.Value.Contains(MetaKey(session))), Is.EqualTo(new[] { true }),
                $"{session}: one master holds both keys");
            var holder = holders[0].Key;
            Assert.That(holder, Is.EqualTo((await cluster.MasterOfAsync(TurnsKey(session))).Port), $"{session}: the master serving slot {turnsSlot}");
            masters.Add(holder);
            Assert.That(FailoverScenario.Questions(await cluster.Db.ListRangeAsync(TurnsKey(session))),
                Is.EqualTo(Enumerable.Range(1, 3).Select(t => $"{session} question {t}")));
            Assert.That(await cluster.Db.KeyTimeToLiveAsync(MetaKey(session)), Is.GreaterThan(TimeSpan.FromHours(23)));
        }

        Assert.That(masters, Has.Count.GreaterThan(1), "the sessions are spread over several masters");
    }

    [Test]
    public async Task SessionCache_AnnouncementsFromEveryMaster_ReachAnotherReplica_WhichDropsItsCopies()
    {
        var cluster = await SharedAsync();
        await using var a = await ServingProxyAsync(s_settings, redis: cluster.ConnectionString);
        await using var b = await ServingProxyAsync(s_settings, redis: cluster.ConnectionString);
        var sessions = Enumerable.Range(0, 8).Select(i => $"cached-{i}").ToArray();
        for (var turn = 1; turn <= 2; turn++)
        {
            foreach (var session in sessions)
            {
                await SendAsync(a, ProxyHost.Chat(UserTurn($"{session} question {turn}"), session: session));
                await Eventually.ValueAsync(() => cluster.Db.ListLengthAsync(TurnsKey(session)), n => n == turn, $"{session}: turn {turn}");
            }
        }

        var metrics = await a.Management.GetStringAsync("/metrics");
        Assert.That(WriteBack.WriteBackTests.Metric(metrics, "mnemo_cache_lookups_total{result=\"hit\"}"), Is.EqualTo(sessions.Length), "each session's second request was served from a's cache");

        foreach (var session in sessions)
        {
            await SendAsync(b, ProxyHost.Chat(UserTurn($"{session} question 3"), session: session));
            await Eventually.ValueAsync(() => cluster.Db.ListLengthAsync(TurnsKey(session)), n => n == 3, $"{session}: b's turn");
        }

        await Eventually.ValueAsync(
            () => a.Management.GetStringAsync("/metrics"),
            m => WriteBack.WriteBackTests.Metric(m, "mnemo_cache_invalidations_total{reason=\"announced\"}") >= sessions.Length,
            "a to drop its copy of every session, whichever master holds it");
        foreach (var session in sessions)
        {
            await SendAsync(a, ProxyHost.Chat(UserTurn($"{session} question 4"), session: session));
            Assert.That(Upstream.LastRequest.Messages().Where(m => m.Role == "user").Select(m => m.Content),
                Is.EqualTo(Enumerable.Range(1, 4).Select(t => $"{session} question {t}")), $"{session}: a sees b's turn");
        }
    }

    [Test]
    public async Task Store_AppendsReadsDedupesAndRefreshesExpiry_OnEveryMaster()
    {
        var cluster = await SharedAsync();
        await using var connection = new RedisConnection(ConfigurationOptions.Parse(cluster.ConnectionString), NullLogger<RedisConnection>.Instance);
        await connection.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => Task.FromResult(connection.IsConnected), "the connection");
        var store = new RedisHistoryStore(connection, new MnemoMetrics(), Options.Create(new StoreOptions { Ttl = TimeSpan.FromMinutes(10) }));

        var masters = new HashSet<int>();
        for (var i = 0; i < 12; i++)
        {
            var session = new SessionKey("tenant", $"store-{i}");
            var first = Turns.Make(session, "q1");
            Assert.That(await store.AppendAsync(first, default), Is.EqualTo(AppendResult.Written));
            Assert.That(await store.AppendAsync(first, default), Is.EqualTo(AppendResult.Duplicate), "a retried turn is not stored twice");
            Assert.That(await store.AppendAsync(Turns.Make(session, "q2"), default), Is.EqualTo(AppendResult.Written));
            Assert.That(await store.AppendAsync(first, default), Is.EqualTo(AppendResult.Duplicate), "still known after a later turn");
            Assert.That(Turns.Questions(await store.ReadAsync(session, 10, default)), Is.EqualTo(new[] { "q1", "q2" }));

            RedisKey turns = RedisKeys.Turns(session), meta = RedisKeys.Meta(session);
            Assert.That(await cluster.Db.KeyTimeToLiveAsync(turns), Is.GreaterThan(TimeSpan.FromMinutes(9)));
            await cluster.Db.KeyExpireAsync(turns, TimeSpan.FromSeconds(5));
            await cluster.Db.KeyExpireAsync(meta, TimeSpan.FromSeconds(5));
            await store.ReadAsync(session, 10, default);
            await Eventually.TrueAsync(async () => await cluster.Db.KeyTimeToLiveAsync(meta) > TimeSpan.FromMinutes(9), "the read to refresh the expiry");
            Assert.That(await cluster.Db.KeyTimeToLiveAsync(turns), Is.GreaterThan(TimeSpan.FromMinutes(9)));
            masters.Add((await cluster.MasterOfAsync(turns)).Port);
        }

        Assert.That(masters, Has.Count.EqualTo(3), "the sessions reached every master");
    }

    [TestCase("Replica")]
    [TestCase("Strict")]
    public async Task MasterKilledUnderTraffic_RequestsSucceedMemoryReturnsAndEveryCompletedTurnIsStored(string consistency)
    {
        await using var cluster = await RedisCluster.StartAsync();
        await using var proxy = await StartProxyAsync(FailoverScenario.Settings(consistency), redis: cluster.ConnectionString);
        await FailoverScenario.MasterKilledAsync(
            $"cluster, {consistency}",
            proxy,
            Upstream,
            [.. Enumerable.Range(0, 6).Select(i => $"failover-{i}")],
            session => cluster.MasterOfAsync(TurnsKey(session)),
            () => cluster.WaitUntilHealthyAsync(),
            async session => cluster.Server(await cluster.MasterOfAsync(TurnsKey(session))),
            session => cluster.Db.ListRangeAsync(TurnsKey(session)));
    }

    [Test]
    public async Task SlotMigratedUnderTraffic_AskAndMovedAreFollowedAndNoTurnIsLost()
    {
        var cluster = await SharedAsync();
        await using var proxy = await StartProxyAsync(s_settings, redis: cluster.ConnectionString);
        var load = ConversationLoad.Start(proxy, Upstream, Enumerable.Range(0, 4).Select(i => $"migrate-{i}"), TimeSpan.FromMilliseconds(20));
        var busy = load.Sessions[0];
        RedisKey turnsKey = TurnsKey(busy), metaKey = MetaKey(busy);
        var slot = cluster.Client.HashSlot(turnsKey);
        RedisServer source, target;
        try
        {
            await WaitForExchangesAsync(load, busy, 3);
            source = await cluster.MasterOfAsync(turnsKey);
            target = (await MastersAsync(cluster)).First(m => m != source);
            var configuration = await cluster.ConfigurationAsync();
            var sourceId = configuration.Nodes.Single(n => n.EndPoint is IPEndPoint ip && ip.Port == source.Port).NodeId;
            var targetId = configuration.Nodes.Single(n => n.EndPoint is IPEndPoint ip && ip.Port == target.Port).NodeId;

            // Counted from here: the redirections are the migration's.
            await cluster.Server(source).ExecuteAsync("CONFIG", "RESETSTAT");
            await cluster.Server(target).ExecuteAsync("CONFIG", "RESETSTAT");

            // The documented resharding steps, with traffic going on between them.
            await cluster.Server(target).ExecuteAsync("CLUSTER", "SETSLOT", slot, "IMPORTING", sourceId);
            await cluster.Server(source).ExecuteAsync("CLUSTER", "SETSLOT", slot, "MIGRATING", targetId);
            await WaitForExchangesAsync(load, busy, 3);

            var keys = (RedisValue[])(await cluster.Server(source).ExecuteAsync("CLUSTER", "GETKEYSINSLOT", slot, 100))!;
            Assert.That(keys.Select(k => (string)k!), Is.EquivalentTo(new[] { (string)turnsKey!, (string)metaKey! }));
            Assert.That(await CommandStats.ValueAsync(cluster.Server(source), "evalsha", "rejected_calls"), Is.Zero, "no redirection while the keys were on the source");
            await cluster.Server(source).ExecuteAsync("MIGRATE", ["127.0.0.1", target.Port, "", 0, 5000, "KEYS", .. keys.Cast<object>()]);
            var migrated = await ListLengthOnAsync(target, turnsKey);

            // The keys are on the target while the source still owns the slot: the source answers ASK (a redirection is
            // counted as a rejected call), and only a command sent after ASKING reaches the keys on the target.
            await WaitForExchangesAsync(load, busy, 3);
            await Eventually.TrueAsync(
                async () => await CommandStats.ValueAsync(cluster.Server(source), "evalsha", "rejected_calls") > 0 && await ListLengthOnAsync(target, turnsKey) > migrated,
                "a write (EVALSHA) redirected by ASK to be executed on the target");

            foreach (var node in new[] { target, source }.Concat((await MastersAsync(cluster)).Where(m => m != source && m != target)))
            {
                await cluster.Server(node).ExecuteAsync("CLUSTER", "SETSLOT", slot, "NODE", targetId);
            }

            // The proxy's slot map still names the source: MOVED from now on, until it updates.
            await WaitForExchangesAsync(load, busy, 3);
        }
        finally
        {
            await load.StopAsync();
        }

        var redirections = await cluster.Server(source).InfoRawAsync("errorstats") ?? "";
        TestContext.Out.WriteLine($"[migration] source node errorstats: {redirections.ReplaceLineEndings(" ").Trim()}");
        TestContext.Out.WriteLine($"[migration] source node: {await CommandStats.ValueAsync(cluster.Server(source), "evalsha", "rejected_calls")} EVALSHA redirected; target node: {await CommandStats.ValueAsync(cluster.Server(target), "asking", "calls")} ASKING");
        Assert.That(redirections, Does.Contain("errorstat_ASK:"), "the source redirected with ASK");
        Assert.That(redirections, Does.Contain("errorstat_MOVED:"), "the source redirected with MOVED");
        Assert.That((await cluster.MasterOfAsync(turnsKey)).Port, Is.EqualTo(target.Port));

        Assert.That(load.All.Where(e => !e.Completed || e.Memory != (e.Turn == 1 ? "empty" : "hit")).Select(e => e.ToString()), Is.Empty,
            "every request succeeded, with memory");
        Assert.That(load.All.Where(e => e.Memory == "hit" && e.ContextTurns != Math.Min(FailoverScenario.Window, e.Turn - 1)).Select(e => e.ToString()), Is.Empty,
            "every remembered request carried every earlier turn (up to the window)");
        foreach (var session in load.Sessions)
        {
            await Eventually.ValueAsync(async () => (await cluster.Db.ListLengthAsync(TurnsKey(session))), n => n >= load.Completed(session).Length, $"{session}: every turn written");
            Assert.That(FailoverScenario.Questions(await cluster.Db.ListRangeAsync(TurnsKey(session))), Is.EqualTo(load.Completed(session)),
                $"{session}: every completed turn stored once, in order");
        }

        TestContext.Out.WriteLine($"[migration] {load.All.Count()} requests, write-back: {await FailoverScenario.WriteBackCountersAsync(proxy)}");
    }

    private static Task WaitForExchangesAsync(ConversationLoad load, string session, int more)
    {
        var target = load.Of(session).Count + more;
        return load.WaitUntilAsync(l => l.Of(session).Count >= target, $"{more} more turns of {session}", TimeSpan.FromSeconds(10));
    }

    /// <summary>LLEN on one node, with ASKING first: the importing node answers it for a slot it does not own yet.</summary>
    private static async Task<long> ListLengthOnAsync(RedisServer node, RedisKey key)
    {
        var (exit, output) = await Tool.RunAsync("redis-cli", ["-p", node.Port.ToString(CultureInfo.InvariantCulture)], stdin: $"ASKING\nLLEN {key}\n");
        Assert.That(exit, Is.Zero, output);
        return long.Parse(output.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1], CultureInfo.InvariantCulture);
    }

    private static async Task<RedisServer[]> MastersAsync(RedisCluster cluster) =>
        [.. (await cluster.ConfigurationAsync()).Nodes.Where(n => !n.IsReplica && n.Slots.Count > 0).Select(n => cluster.NodeAt(n.EndPoint!))];

    private async Task<RedisCluster> SharedAsync()
    {
        _shared ??= await RedisCluster.StartAsync();
        await _shared.WaitUntilHealthyAsync();
        foreach (var master in await MastersAsync(_shared))
        {
            await _shared.Server(master).FlushAllDatabasesAsync();
        }

        return _shared;
    }
}
