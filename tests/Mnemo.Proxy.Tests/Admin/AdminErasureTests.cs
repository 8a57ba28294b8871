using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;
using Mnemo.Proxy.Tests.WriteBack;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Admin;

/// <summary>
/// Erasure (the right to be forgotten) through the admin API where it is hard: turns queued or in flight on this or
/// another replica, a new conversation on an erased id, a tenant of thousands of sessions, a cluster, the embedded store.
/// An erased session must stay erased: no turn answered before the erasure may come back, whichever replica held it.
/// </summary>
public sealed class AdminErasureTests : FunctionalTest
{
    private const string Token = "admin-token-0123456789abcdef";

    // Short, so a new turn can follow an erasure quickly; the tombstone refuses turns answered up to this after it.
    private static readonly TimeSpan s_skew = TimeSpan.FromMilliseconds(200);

    // Not the default (1 h): the tombstone's expiry must come from the setting.
    private static readonly TimeSpan s_tombstoneTtl = TimeSpan.FromMinutes(30);

    [Test]
    public async Task EraseSession_WhileItsTurnsWaitForRetryOnThisReplica_DropsThemAndNoneIsWrittenWhenRedisAcceptsWritesAgain()
    {
        await using var proxy = await StartProxyAsync(Settings(
            ("Mnemo:Redis:WriteRetries", "100"),
            ("Mnemo:Redis:WriteRetryDelay", "00:00:00.100"),
            ("Mnemo:Redis:WriteRetryMaxDelay", "00:00:00.200")));
        const string session = "queued-then-erased";

        // Writes are refused (out of memory) while reads still work: every turn of the session waits in its line.
        await Redis.Server.ConfigSetAsync("maxmemory-policy", "noeviction");
        await Redis.Server.ConfigSetAsync("maxmemory", "1");
        JsonElement erased;
        try
        {
            for (var i = 1; i <= 3; i++)
            {
                var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"private question {i}", stream: i == 2), session));
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            }

            await Eventually.TrueAsync(async () => await MetricAsync(proxy, "mnemo_writeback_total{outcome=\"retried\"}") >= 1, "the first turn's write to be refused and retried");
            Assert.That(await MetricAsync(proxy, "mnemo_writeback_queue_depth"), Is.EqualTo(3), "all three turns wait");

            HttpStatusCode status;
            (status, erased) = await AdminAsync(proxy, HttpMethod.Delete, $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions/{session}");
            Assert.That(status, Is.EqualTo(HttpStatusCode.OK), erased.GetRawText());
        }
        finally
        {
            await Redis.Server.ConfigSetAsync("maxmemory", "0");
        }

        Assert.That(erased.GetProperty("queued_turns_dropped").GetInt32(), Is.EqualTo(3), "every turn this replica held for the session");
        Assert.That(erased.GetProperty("erased").GetBoolean(), Is.False, "nothing of it had reached Redis");

        var metrics = await Eventually.ValueAsync(
            () => proxy.Management.GetStringAsync("/metrics"),
            m => WriteBackTests.Metric(m, "mnemo_writeback_queue_depth") == 0 && WriteBackTests.Metric(m, "mnemo_writeback_total{outcome=\"erased\"}") == 3,
            "the writer to let the three erased turns go");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"written\"}"), Is.Zero);
        // The writer's retries keep going for a while: give a late write a chance to show.
        await Task.Delay(500);
        Assert.That(await Redis.Db.KeyExistsAsync(TurnsKey(session)), Is.False, "no turn of the erased session in Redis");
        await AssertTombstoneAsync(Redis.Db, MetaKey(session));

        var (next, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("a fresh start"), session));
        Assert.That(Header(next, "X-Mnemo-Memory"), Is.EqualTo("empty"));
        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[] { "You are a helpful assistant.", "a fresh start" }),
            "no erased turn reaches the upstream");
    }

    [Test]
    public async Task EraseViaReplicaA_WhileReplicaBsWriteIsInFlight_TheTombstoneRefusesIt_AndANewTurnAfterTheSkewIsStored()
    {
        const string session = "two-replicas";
        await using var relay = RedisRelay.Start(Redis);
        await using var a = await StartProxyAsync(Settings());
        await using var b = await StartProxyAsync(Settings(("Mnemo:Redis:WriteTimeout", "00:00:05")), redis: relay.ConnectionString);

        await SendWhoseWriteIsHeldAsync(b, relay, session, "what B answered before the erasure");

        // B's write is on its way (held by the relay): the erasure through A gets to Redis first.
        var (status, erased) = await AdminAsync(a, HttpMethod.Delete, $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions/{session}");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), erased.GetRawText());
        Assert.That(erased.GetProperty("queued_turns_dropped").GetInt32(), Is.Zero, "A held none of B's turns");
        Assert.That(await MetricAsync(b, "mnemo_writeback_total{outcome=\"written\"}"), Is.Zero, "B's write had not landed yet");

        var metrics = await SettledAsync(b);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"written\"}"), Is.Zero, "B's turn was not written");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"erased\"}"), Is.EqualTo(1), "B's turn was refused by the tombstone");
        Assert.That(await Redis.Db.KeyExistsAsync(TurnsKey(session)), Is.False, "no turn of the erased session in Redis");
        var tombstone = await AssertTombstoneAsync(Redis.Db, MetaKey(session));

        // A turn answered after the erasure and the skew allowance is a new conversation: stored, and remembered.
        await PastAsync(tombstone);
        relay.Delay = TimeSpan.Zero;
        var (fresh, _) = await SendAsync(b, ProxyHost.Chat(UserTurn("starting over"), session));
        Assert.That(Header(fresh, "X-Mnemo-Memory"), Is.EqualTo("empty"));
        await WaitForTurnsAsync(session, 1);
        var (next, _) = await SendAsync(a, ProxyHost.Chat(UserTurn("and then?"), session));
        Assert.That(Header(next, "X-Mnemo-Memory"), Is.EqualTo("hit"));
        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[]
        {
            "You are a helpful assistant.", "starting over", "Hello! How can I assist you today?", "and then?",
        }));
        Assert.That(await MetricAsync(b, "mnemo_writeback_total{outcome=\"written\"}"), Is.EqualTo(1));
    }

    [Test]
    public async Task ErasedSession_OldTurnLandingAfterTheNewConversationsFirstTurn_IsRefused_AndOnlyTheNewTurnsRemain()
    {
        const string session = "reused-id";
        await using var relay = RedisRelay.Start(Redis);
        await using var a = await StartProxyAsync(Settings());
        await using var b = await StartProxyAsync(Settings(("Mnemo:Redis:WriteTimeout", "00:00:05")), redis: relay.ConnectionString);

        await SendAsync(a, ProxyHost.Chat(UserTurn("old turn one"), session));
        await WaitForTurnsAsync(session, 1);
        await SendWhoseWriteIsHeldAsync(b, relay, session, "old turn two");

        var (_, erased) = await AdminAsync(a, HttpMethod.Delete, $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions/{session}");
        Assert.That(erased.GetProperty("erased").GetBoolean(), Is.True);
        await PastAsync(await TombstoneAsync(Redis.Db, MetaKey(session)));

        // The new conversation's first turn is written before B's old turn reaches Redis.
        var (fresh, _) = await SendAsync(a, ProxyHost.Chat(UserTurn("new turn one"), session));
        Assert.That(Header(fresh, "X-Mnemo-Memory"), Is.EqualTo("empty"));
        await WaitForTurnsAsync(session, 1);
        Assert.That(await MetricAsync(b, "mnemo_writeback_total{outcome=\"erased\"}"), Is.Zero, "B's old turn is still on its way");

        var metrics = await SettledAsync(b);
        Assert.That(Questions(await StoredTurnsAsync(session)), Is.EqualTo(new[] { "new turn one" }), "no old turn reappeared");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"erased\"}"), Is.EqualTo(1), "B's old turn was refused though the session exists again");

        var (next, _) = await SendAsync(a, ProxyHost.Chat(UserTurn("new turn two"), session));
        Assert.That(Header(next, "X-Mnemo-Memory"), Is.EqualTo("hit"));
        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[]
        {
            "You are a helpful assistant.", "new turn one", "Hello! How can I assist you today?", "new turn two",
        }));
        await WaitForTurnsAsync(session, 2);
        Assert.That(Questions(await StoredTurnsAsync(session)), Is.EqualTo(new[] { "new turn one", "new turn two" }));
    }

    [Test]
    public async Task ErasedSession_NewTurnQueuedBehindItsErasedTurnsOnOneReplica_IsTheOnlyOneWritten()
    {
        await using var proxy = await StartProxyAsync(Settings(
            ("Mnemo:Redis:WriteRetries", "100"),
            ("Mnemo:Redis:WriteRetryDelay", "00:00:00.100"),
            ("Mnemo:Redis:WriteRetryMaxDelay", "00:00:00.200")));
        const string session = "one-line";
        await Redis.Server.ConfigSetAsync("maxmemory-policy", "noeviction");
        await Redis.Server.ConfigSetAsync("maxmemory", "1");
        try
        {
            await SendAsync(proxy, ProxyHost.Chat(UserTurn("old turn one"), session));
            await SendAsync(proxy, ProxyHost.Chat(UserTurn("old turn two"), session));
            var (_, erased) = await AdminAsync(proxy, HttpMethod.Delete, $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions/{session}");
            Assert.That(erased.GetProperty("queued_turns_dropped").GetInt32(), Is.EqualTo(2));
            await PastAsync(await TombstoneAsync(Redis.Db, MetaKey(session)));

            // Still refused by Redis: the new turn waits in the session's line, behind the erased ones.
            var (fresh, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("new turn one"), session));
            Assert.That(Header(fresh, "X-Mnemo-Memory"), Is.EqualTo("empty"));
            Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[] { "You are a helpful assistant.", "new turn one" }));
        }
        finally
        {
            await Redis.Server.ConfigSetAsync("maxmemory", "0");
        }

        await WaitForTurnsAsync(session, 1);
        await Eventually.TrueAsync(async () => await MetricAsync(proxy, "mnemo_writeback_queue_depth") == 0, "the writer to drain");
        Assert.That(Questions(await StoredTurnsAsync(session)), Is.EqualTo(new[] { "new turn one" }));
        Assert.That(await MetricAsync(proxy, "mnemo_writeback_total{outcome=\"written\"}"), Is.EqualTo(1));
        Assert.That(await MetricAsync(proxy, "mnemo_writeback_total{outcome=\"erased\"}"), Is.EqualTo(2));
    }

    [Test]
    public async Task EraseTenant_OfFiveThousandSessions_ErasesEveryOneQuickly_AndLeavesAnotherTenantIntact()
    {
        const int Sessions = 5000;
        const int Others = 50;
        string erasedTenant = Tenant("sk-tenant-to-erase"), keptTenant = Tenant("sk-tenant-to-keep");
        await using var proxy = await StartProxyAsync(Settings());

        // One real stored turn, copied into every seeded session.
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("a seeded question"), "template", apiKey: "sk-template"));
        await WaitForTurnsAsync("template", 1, "sk-template");
        var element = await Redis.Db.ListGetByIndexAsync(TurnsKey("template", "sk-template"), 0);
        await Redis.Db.KeyDeleteAsync([TurnsKey("template", "sk-template"), MetaKey("template", "sk-template")]);
        Assert.That(await KeyCountAsync(), Is.Zero);

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var batch = Redis.Db.CreateBatch();
        var seeding = new List<Task>();
        foreach (var (tenant, count) in new[] { (erasedTenant, Sessions), (keptTenant, Others) })
        {
            for (var i = 0; i < count; i++)
            {
                var prefix = $"mnemo:v1:{{{tenant}:s-{i:D5}}}";
                seeding.Add(batch.ListRightPushAsync(prefix + ":turns", element));
                seeding.Add(batch.HashSetAsync(prefix + ":meta", [new HashEntry("n", 1), new HashEntry("t", now)]));
            }
        }

        batch.Execute();
        await Task.WhenAll(seeding);
        Assert.That(await KeyCountAsync(), Is.EqualTo(2 * (Sessions + Others)));
        var keptBefore = await ListAllAsync(proxy, keptTenant, 20);
        Assert.That(keptBefore, Has.Count.EqualTo(Others));
        var exportPath = $"/admin/v1/tenants/{keptTenant}/sessions/s-00007";
        var (_, exportBefore) = await AdminAsync(proxy, HttpMethod.Get, exportPath);

        var clock = Stopwatch.StartNew();
        var (status, erased) = await AdminAsync(proxy, HttpMethod.Delete, $"/admin/v1/tenants/{erasedTenant}");
        clock.Stop();
        TestContext.Progress.WriteLine(
            $"[tenant erase] {Sessions} sessions: {clock.ElapsedMilliseconds} ms measured by the client, elapsed_ms {erased.GetProperty("elapsed_ms").GetDouble()} reported");

        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), erased.GetRawText());
        Assert.That(erased.GetProperty("sessions_erased").GetInt64(), Is.EqualTo(Sessions));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "a generous bound on a noisy two-core machine");

        var left = (await Redis.Server.KeysAsync(pattern: $"mnemo:v1:{{{erasedTenant}:*").ToListAsync()).Select(k => (string)k!).ToList();
        Assert.That(left.Where(k => !k.EndsWith("}:meta", StringComparison.Ordinal)), Is.Empty, "no turns key of the erased tenant");
        Assert.That(left, Has.Count.EqualTo(Sessions), "a tombstone per session");
        var tombstoneBatch = Redis.Db.CreateBatch();
        var fields = left.Select(k => tombstoneBatch.HashGetAllAsync(k)).ToList();
        tombstoneBatch.Execute();
        var shapes = (await Task.WhenAll(fields)).Select(f => string.Join(',', f.Select(e => (string)e.Name!))).Distinct().ToList();
        Assert.That(shapes, Is.EqualTo(new[] { "e" }), "every meta left holds only the tombstone's erase time");

        Assert.That(await ListAllAsync(proxy, erasedTenant, 1000), Is.Empty, "the erased tenant lists no session");
        var keptAfter = await ListAllAsync(proxy, keptTenant, 20);
        Assert.That(keptAfter, Is.EquivalentTo(keptBefore), "the other tenant's sessions are all there");
        var (_, exportAfter) = await AdminAsync(proxy, HttpMethod.Get, exportPath);
        Assert.That(exportAfter.GetProperty("turns").GetRawText(), Is.EqualTo(exportBefore.GetProperty("turns").GetRawText()));
        Assert.That(exportAfter.GetProperty("totals").GetRawText(), Is.EqualTo(exportBefore.GetProperty("totals").GetRawText()));
        Assert.That(await Redis.Server.KeysAsync(pattern: $"mnemo:v1:{{{keptTenant}:*").CountAsync(), Is.EqualTo(2 * Others));
    }

    [Test]
    public async Task Cluster_ListsEachSessionOnceAcrossMasters_ExportsOne_AndTenantEraseLeavesNoTurnOnAnyMaster()
    {
        await using var cluster = await RedisCluster.StartAsync();
        await using var proxy = await StartProxyAsync(Settings(), redis: cluster.ConnectionString);
        var sessions = Enumerable.Range(0, 12).Select(i => $"cluster-{i:D2}").ToArray();
        foreach (var session in sessions)
        {
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"{session} question"), session));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }

        var masters = new HashSet<int>();
        foreach (var session in sessions)
        {
            await Eventually.ValueAsync(() => cluster.Db.ListLengthAsync(TurnsKey(session)), n => n == 1, $"{session}: its turn stored");
            masters.Add((await cluster.MasterOfAsync(TurnsKey(session))).Port);
        }

        Assert.That(masters, Has.Count.GreaterThan(1), "the sessions are spread over several masters");

        // Small pages, so the listing crosses from one master's SCAN to the next. No key is added meanwhile, so no SCAN
        // repeats one: every session exactly once, no dedupe.
        var listed = await ListAllAsync(proxy, Tenant(ApiKey), 2);
        Assert.That(listed, Is.EquivalentTo(sessions), "every session exactly once");

        var (status, export) = await AdminAsync(proxy, HttpMethod.Get, $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions/cluster-05");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(export.GetProperty("turns").GetArrayLength(), Is.EqualTo(1));
        Assert.That(export.GetProperty("turns")[0].GetProperty("messages")[0].GetProperty("content").GetString(), Is.EqualTo("cluster-05 question"));

        var (_, erased) = await AdminAsync(proxy, HttpMethod.Delete, $"/admin/v1/tenants/{Tenant(ApiKey)}");
        Assert.That(erased.GetProperty("sessions_erased").GetInt64(), Is.EqualTo(sessions.Length));

        var tombstones = 0;
        // The masters that serve slots: a node's view can still call a replica without slots a master.
        foreach (var node in (await cluster.ConfigurationAsync()).Nodes.Where(n => !n.IsReplica && n.Slots.Count > 0))
        {
            var server = cluster.Client.GetServer(node.EndPoint!);
            await foreach (var key in server.KeysAsync(pattern: $"mnemo:v1:{{{Tenant(ApiKey)}:*"))
            {
                Assert.That((string)key!, Does.EndWith("}:meta"), "no turns key on any master");
                await AssertTombstoneAsync(cluster.Db, key);
                tombstones++;
            }
        }

        Assert.That(tombstones, Is.EqualTo(sessions.Length));
        Assert.That(await ListAllAsync(proxy, Tenant(ApiKey), 100), Is.Empty);
        var (_, gone) = await AdminAsync(proxy, HttpMethod.Get, $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions/cluster-05");
        Assert.That(gone.GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("session_not_found"));
    }

    [Test]
    public async Task EmbeddedStore_EraseThenExportIsNotFound_NextRequestHasNoHistory_AndTenantEraseCounts()
    {
        await using var proxy = await StartProxyAsync(Settings(), redis: null);
        const string session = "embedded";
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("remember me"), session));
        var exportPath = $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions/{session}";
        var (_, export) = await Eventually.ValueAsync(
            () => AdminAsync(proxy, HttpMethod.Get, exportPath), e => e.Status == HttpStatusCode.OK, "the turn to be stored");
        Assert.That(export.GetProperty("turns").GetArrayLength(), Is.EqualTo(1));

        var (status, erased) = await AdminAsync(proxy, HttpMethod.Delete, exportPath);
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(erased.GetProperty("erased").GetBoolean(), Is.True);
        var (notFound, error) = await AdminAsync(proxy, HttpMethod.Get, exportPath);
        Assert.That(notFound, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(error.GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("session_not_found"));

        // The embedded tombstone has no skew: a turn answered a few milliseconds later is a new conversation.
        await Task.Delay(20);
        var (fresh, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("who am I?"), session));
        Assert.That(Header(fresh, "X-Mnemo-Memory"), Is.EqualTo("empty"));
        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[] { "You are a helpful assistant.", "who am I?" }));
        (_, export) = await Eventually.ValueAsync(
            () => AdminAsync(proxy, HttpMethod.Get, exportPath), e => e.Status == HttpStatusCode.OK, "the new turn to be stored");
        Assert.That(export.GetProperty("turns")[0].GetProperty("messages")[0].GetProperty("content").GetString(), Is.EqualTo("who am I?"));

        const string OtherKey = "sk-embedded-tenant";
        for (var i = 0; i < 3; i++)
        {
            await SendAsync(proxy, ProxyHost.Chat(UserTurn($"q{i}"), $"other-{i}", apiKey: OtherKey));
        }

        await Eventually.TrueAsync(async () => (await ListAllAsync(proxy, Tenant(OtherKey), 10)).Count == 3, "the other tenant's three sessions");
        var (_, tenantErased) = await AdminAsync(proxy, HttpMethod.Delete, $"/admin/v1/tenants/{Tenant(OtherKey)}");
        Assert.That(tenantErased.GetProperty("sessions_erased").GetInt64(), Is.EqualTo(3));
        Assert.That(await ListAllAsync(proxy, Tenant(OtherKey), 10), Is.Empty);
        Assert.That(await ListAllAsync(proxy, Tenant(ApiKey), 10), Is.EqualTo(new[] { session }), "another tenant's session is untouched");
    }

    private static Dictionary<string, string?> Settings(params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mnemo:Admin:Token"] = Token,
            ["Mnemo:Admin:ClockSkew"] = s_skew.ToString("c", CultureInfo.InvariantCulture),
            ["Mnemo:Admin:TombstoneTtl"] = s_tombstoneTtl.ToString("c", CultureInfo.InvariantCulture),
            ["Mnemo:Redis:ReadTimeout"] = "00:00:05",
        };
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        return settings;
    }

    /// <summary>
    /// Sends a streamed turn through <paramref name="proxy"/> (behind <paramref name="relay"/>) whose history read goes
    /// through at once but whose write is held by the relay for a second: it is in flight when this returns.
    /// </summary>
    private async Task SendWhoseWriteIsHeldAsync(ProxyHost proxy, RedisRelay relay, string session, string question)
    {
        Upstream.EventDelay = TimeSpan.FromMilliseconds(60);
        var before = Upstream.Requests.Count;
        var sending = SendAsync(proxy, ProxyHost.Chat(UserTurn(question, stream: true), session));
        // Forwarded: the read is done; the answer streams for a few hundred milliseconds more.
        await Eventually.TrueAsync(() => Task.FromResult(Upstream.Requests.Count > before), "the request to reach the upstream");
        relay.Delay = TimeSpan.FromSeconds(1);
        var (response, _) = await sending;
        Upstream.EventDelay = TimeSpan.Zero;
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> AdminAsync(ProxyHost proxy, HttpMethod method, string path)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        using var response = await proxy.Management.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(text);
        return (response.StatusCode, document.RootElement.Clone());
    }

    /// <summary>Every page of a tenant's listing, in order.</summary>
    private static async Task<List<string>> ListAllAsync(ProxyHost proxy, string tenant, int limit)
    {
        var sessions = new List<string>();
        string? cursor = null;
        for (var pages = 1; ; pages++)
        {
            var path = $"/admin/v1/tenants/{tenant}/sessions?limit={limit}" + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor));
            var (status, page) = await AdminAsync(proxy, HttpMethod.Get, path);
            Assert.That(status, Is.EqualTo(HttpStatusCode.OK), page.GetRawText());
            sessions.AddRange(page.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("session").GetString()!));
            cursor = page.GetProperty("next_cursor").GetString();
            if (cursor is null)
            {
                return sessions;
            }

            Assert.That(pages, Is.LessThan(10_000), "the listing ends");
        }
    }

    /// <summary>The proxy's writer holds nothing and has an outcome for its one turn (written, erased or dropped).</summary>
    private static Task<string> SettledAsync(ProxyHost proxy) =>
        Eventually.ValueAsync(
            () => proxy.Management.GetStringAsync("/metrics"),
            m => WriteBackTests.Metric(m, "mnemo_writeback_queue_depth") == 0
                && new[] { "written", "erased", "dropped" }.Sum(o => WriteBackTests.Metric(m, $"mnemo_writeback_total{{outcome=\"{o}\"}}")) >= 1,
            "the replica's write to be settled");

    private static async Task<double> MetricAsync(ProxyHost proxy, string series) =>
        WriteBackTests.Metric(await proxy.Management.GetStringAsync("/metrics"), series);

    /// <summary>The erase time a tombstone holds (Unix ms on Redis's clock, plus the skew).</summary>
    private static async Task<long> TombstoneAsync(IDatabase db, RedisKey meta) =>
        (long)await db.HashGetAsync(meta, "e");

    /// <summary>The session's meta is a tombstone: the field <c>e</c> only, a number, expiring within the tombstone ttl.</summary>
    private static async Task<long> AssertTombstoneAsync(IDatabase db, RedisKey meta)
    {
        var fields = await db.HashGetAllAsync(meta);
        Assert.That(fields.Select(f => (string)f.Name!), Is.EqualTo(new[] { "e" }), "a tombstone holds the erase time only");
        Assert.That(long.TryParse((string?)fields[0].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var at), Is.True, "a number");
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        Assert.That(at, Is.InRange(now - 60_000, now + (long)s_skew.TotalMilliseconds + 1_000), "the erase time (ms) plus the skew");
        var ttl = await db.KeyTimeToLiveAsync(meta);
        Assert.That(ttl, Is.Not.Null.And.LessThanOrEqualTo(s_tombstoneTtl).And.GreaterThan(s_tombstoneTtl - TimeSpan.FromMinutes(1)), "PTTL: the tombstone ttl");
        return at;
    }

    /// <summary>Waits until this machine's clock (the proxies') is past a tombstone's time.</summary>
    private static async Task PastAsync(long tombstoneMs)
    {
        while (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() <= tombstoneMs + 5)
        {
            await Task.Delay(10);
        }
    }

    private static string[] Questions(JsonElement[] turns) =>
        [.. turns.Select(t => t.GetProperty("messages")[0].GetProperty("content").GetString()!)];
}
