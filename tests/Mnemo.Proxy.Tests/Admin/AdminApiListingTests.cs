using System.Net;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;
using StackExchange.Redis;
using static Mnemo.Proxy.Tests.Admin.AdminApiClient;

namespace Mnemo.Proxy.Tests.Admin;

/// <summary><c>GET /admin/v1/tenants/{tenant}/sessions</c>: paging through every session of one tenant and none of another's.</summary>
public sealed class AdminApiListingTests : FunctionalTest
{
    private const string OtherKey = "sk-other-tenant-key";

    [Test]
    public async Task List_Redis250SessionsPagedBy100_EachListedWithItsCounts_NoOtherTenantsNorErased()
    {
        await using var proxy = await StartProxyAsync(Settings());
        // Through the proxy: three sessions of the tenant (one of two turns), one erased, and the other tenant's.
        await SendTurnAsync(proxy, Turn("openai-chat", "One", stream: false, "listed-1"));
        await WaitForTurnsAsync("listed-1", 1);
        await SendTurnAsync(proxy, Turn("ollama-chat", "Two", stream: false, "listed-1"));
        await SendTurnAsync(proxy, Turn("anthropic-messages", "Three", stream: true, "listed-2"));
        await SendTurnAsync(proxy, Turn("openai-responses", "Four", stream: false, "listed-3"));
        await SendTurnAsync(proxy, Turn("openai-chat", "Five", stream: false, "erased-1"));
        await SendTurnAsync(proxy, Turn("openai-chat", "Other", stream: false, "listed-1", apiKey: OtherKey));
        await WaitForTurnsAsync("listed-1", 2);
        await WaitForTurnsAsync("listed-2", 1);
        await WaitForTurnsAsync("listed-3", 1);
        await WaitForTurnsAsync("erased-1", 1);
        await WaitForTurnsAsync("listed-1", 1, OtherKey);
        Assert.That((await DeleteAsync(proxy, SessionPath(Tenant(ApiKey), "erased-1"))).Json.GetProperty("erased").GetBoolean(), Is.True);

        // For volume, sessions seeded as the proxy writes them: a stored element copied, meta n and t.
        var element = (byte[])(await Redis.Db.ListGetByIndexAsync(TurnsKey("listed-3"), 0))!;
        var expected = new Dictionary<string, (long Turns, long Written, string? Last)>
        {
            ["listed-1"] = (2, 2, IsoTime((await StoredTurnsAsync("listed-1"))[1].GetProperty("ts").GetInt64())),
            ["listed-2"] = (1, 1, IsoTime((await StoredTurnsAsync("listed-2"))[0].GetProperty("ts").GetInt64())),
            ["listed-3"] = (1, 1, IsoTime((await StoredTurnsAsync("listed-3"))[0].GetProperty("ts").GetInt64())),
        };
        const long baseMs = 1_780_000_000_000;
        var batch = Redis.Db.CreateBatch();
        var writes = new List<Task>();
        for (var i = 0; i < 247; i++)
        {
            var session = $"seeded-{i:D3}";
            expected[session] = (1, 1, IsoTime(baseMs + i));
            writes.Add(batch.ListRightPushAsync(TurnsKey(session), element));
            writes.Add(batch.HashSetAsync(MetaKey(session), [new HashEntry("n", 1), new HashEntry("t", baseMs + i)]));
        }

        for (var i = 0; i < 59; i++)
        {
            writes.Add(batch.ListRightPushAsync(TurnsKey($"other-{i}", OtherKey), element));
            writes.Add(batch.HashSetAsync(MetaKey($"other-{i}", OtherKey), [new HashEntry("n", 1), new HashEntry("t", baseMs)]));
        }

        batch.Execute();
        await Task.WhenAll(writes);

        var (listed, pages) = await ListAllAsync(proxy, Tenant(ApiKey), limit: 100);
        var others = await ListAllAsync(proxy, Tenant(OtherKey), limit: 1000);

        // SCAN may in theory return a key twice (a rehash between calls); the contract is per session, so this reads it per session.
        var sessions = listed.GroupBy(s => s.GetProperty("session").GetString()!).ToDictionary(g => g.Key, g => g.First());
        Assert.That(sessions.Keys, Is.EquivalentTo(expected.Keys), "every session of the tenant, nothing else (not the erased one)");
        Assert.That(listed, Has.Count.EqualTo(250), "each exactly once");
        Assert.That(pages, Is.GreaterThanOrEqualTo(3), "paged");
        foreach (var (session, (turns, written, last)) in expected)
        {
            var entry = sessions[session];
            Assert.That(
                (entry.GetProperty("turns").GetInt64(), entry.GetProperty("turns_written").GetInt64(), entry.GetProperty("last_activity").GetString()),
                Is.EqualTo((turns, written, last)), session);
        }

        Assert.That(others.Sessions.Select(s => s.GetProperty("session").GetString()),
            Is.EquivalentTo(Enumerable.Range(0, 59).Select(i => $"other-{i}").Append("listed-1")), "the other tenant lists only its own");
        Assert.That(others.Pages, Is.EqualTo(1));
    }

    [Test]
    public async Task List_Redis_BadCursorOrLimit_400()
    {
        await using var proxy = await StartProxyAsync(Settings());
        var path = $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions";

        foreach (var cursor in new[] { "zzz", "1-0", "0-", "-5", "0-abc", "0--1" })
        {
            var reply = await GetAsync(proxy, $"{path}?cursor={Uri.EscapeDataString(cursor)}");
            Assert.That((reply.Status, reply.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "invalid_cursor")), cursor);
        }

        await AssertLimitsAsync(proxy, path);
        var empty = await GetAsync(proxy, path);
        Assert.That(empty.Status, Is.EqualTo(HttpStatusCode.OK), empty.Text);
        Assert.That(empty.Json.GetProperty("sessions").GetArrayLength(), Is.Zero);
        Assert.That(empty.Json.GetProperty("next_cursor").ValueKind, Is.EqualTo(JsonValueKind.Null));
    }

    [Test]
    public async Task List_Embedded30SessionsPagedBy7_OrdinalPagesOfSeven_NoOtherTenants()
    {
        await using var proxy = await StartProxyAsync(Settings(), redis: null);
        var expected = Enumerable.Range(0, 30).Select(i => $"emb-{i:D2}").ToArray();
        foreach (var session in expected.Reverse())
        {
            await SendTurnAsync(proxy, Turn("openai-chat", "Hi " + session, stream: false, session));
        }

        await SendTurnAsync(proxy, Turn("openai-chat", "Again", stream: false, "emb-07"));
        await SendTurnAsync(proxy, Turn("openai-chat", "Other", stream: false, "emb-05", apiKey: OtherKey));
        await SendTurnAsync(proxy, Turn("openai-chat", "Other", stream: false, "emb-x1", apiKey: OtherKey));
        var path = $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions";
        await Eventually.ValueAsync(
            async () => (await ListAllAsync(proxy, Tenant(ApiKey), limit: 1000)).Sessions.Sum(s => s.GetProperty("turns").GetInt64()),
            n => n == 31,
            "31 turns written");

        var sizes = new List<int>();
        var listed = new List<JsonElement>();
        string? cursor = null;
        do
        {
            var reply = await GetAsync(proxy, cursor is null ? $"{path}?limit=7" : $"{path}?limit=7&cursor={Uri.EscapeDataString(cursor)}");
            Assert.That(reply.Status, Is.EqualTo(HttpStatusCode.OK), reply.Text);
            var page = reply.Json.GetProperty("sessions").EnumerateArray().ToArray();
            sizes.Add(page.Length);
            listed.AddRange(page);
            cursor = reply.Json.GetProperty("next_cursor").GetString();
        }
        while (cursor is not null && sizes.Count < 20);

        Assert.That(sizes, Is.EqualTo(new[] { 7, 7, 7, 7, 2 }));
        Assert.That(listed.Select(s => s.GetProperty("session").GetString()), Is.EqualTo(expected), "each once, in ordinal order");
        var again = listed.Single(s => s.GetProperty("session").GetString() == "emb-07");
        Assert.That((again.GetProperty("turns").GetInt64(), again.GetProperty("turns_written").GetInt64()), Is.EqualTo((2L, 2L)));
        Assert.That(listed.Where(s => s.GetProperty("session").GetString() != "emb-07").Select(s => s.GetProperty("turns_written").GetInt64()), Is.All.EqualTo(1));
        Assert.That(listed.Select(s => s.GetProperty("last_activity").GetString()), Is.All.Match(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"));
        var others = await ListAllAsync(proxy, Tenant(OtherKey), limit: 7);
        Assert.That(others.Sessions.Select(s => s.GetProperty("session").GetString()), Is.EqualTo(new[] { "emb-05", "emb-x1" }));
    }

    [Test]
    public async Task List_Embedded_BadCursorOrLimit_400()
    {
        await using var proxy = await StartProxyAsync(Settings(), redis: null);
        await SendTurnAsync(proxy, Turn("openai-chat", "Hi", stream: false, "emb-1"));
        var path = $"/admin/v1/tenants/{Tenant(ApiKey)}/sessions";

        // No session id has a space, '!' or '/': no page of this store ended with one.
        foreach (var cursor in new[] { "not a cursor!", "a/b", new string('x', 300) })
        {
            var reply = await GetAsync(proxy, $"{path}?cursor={Uri.EscapeDataString(cursor)}");
            Assert.That((reply.Status, reply.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "invalid_cursor")), cursor);
        }

        await AssertLimitsAsync(proxy, path);
    }

    private static async Task AssertLimitsAsync(ProxyHost proxy, string path)
    {
        foreach (var limit in new[] { "0", "5000", "1001", "-1", "abc", "1.5" })
        {
            var reply = await GetAsync(proxy, $"{path}?limit={limit}");
            Assert.That((reply.Status, reply.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "invalid_limit")), limit);
        }

        Assert.That((await GetAsync(proxy, $"{path}?limit=1000")).Status, Is.EqualTo(HttpStatusCode.OK), "the maximum");
        Assert.That((await GetAsync(proxy, $"{path}?limit=1")).Status, Is.EqualTo(HttpStatusCode.OK), "the minimum");
    }

    /// <summary>Follows next_cursor from the first page to the last: every listed entry, and how many pages.</summary>
    private static async Task<(List<JsonElement> Sessions, int Pages)> ListAllAsync(ProxyHost proxy, string tenant, int limit)
    {
        var sessions = new List<JsonElement>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var query = cursor is null ? $"?limit={limit}" : $"?limit={limit}&cursor={Uri.EscapeDataString(cursor)}";
            var reply = await GetAsync(proxy, $"/admin/v1/tenants/{tenant}/sessions{query}");
            Assert.That(reply.Status, Is.EqualTo(HttpStatusCode.OK), reply.Text);
            Assert.That(reply.Json.GetProperty("tenant").GetString(), Is.EqualTo(tenant));
            sessions.AddRange(reply.Json.GetProperty("sessions").EnumerateArray());
            cursor = reply.Json.GetProperty("next_cursor").GetString();
            pages++;
        }
        while (cursor is not null && pages < 100);

        Assert.That(cursor, Is.Null, "the last page has no next cursor");
        return (sessions, pages);
    }
}
