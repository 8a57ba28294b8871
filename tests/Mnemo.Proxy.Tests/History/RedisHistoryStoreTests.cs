using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Tests.Common;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.History;

/// <summary>The Redis layout and scripts, against a real redis-server.</summary>
public sealed class RedisHistoryStoreTests : RedisStoreTest
{
    private static readonly SessionKey s_session = new("tenant1", "session-1");

    [Test]
    public async Task Append_WritesOneElementUnderTheHashTaggedKeys()
    {
        var store = Store();
        var turn = Turns.Make(s_session, "q1");
        Assert.That(await store.AppendAsync(turn, default), Is.EqualTo(AppendResult.Written));

        var keys = Redis.Server.Keys(pattern: "*").Select(k => k.ToString()).OrderBy(k => k).ToArray();
        Assert.That(keys, Is.EqualTo(new[] { "mnemo:v1:{tenant1:session-1}:meta", "mnemo:v1:{tenant1:session-1}:turns" }));
        Assert.That(Redis.Db.Multiplexer.HashSlot(keys[0]), Is.EqualTo(Redis.Db.Multiplexer.HashSlot(keys[1])), "one cluster slot");
        Assert.That((byte[]?)await Redis.Db.ListGetByIndexAsync(keys[1], 0), Is.EqualTo(turn.Payload));
        Assert.That((string?)await Redis.Db.HashGetAsync(keys[0], "v"), Is.EqualTo(turn.Id));
    }

    [Test]
    public async Task Append_SameTurnAgain_AddsNothing()
    {
        var store = Store();
        var turn = Turns.Make(s_session, "q1");
        Assert.That(await store.AppendAsync(turn, default), Is.EqualTo(AppendResult.Written));
        Assert.That(await store.AppendAsync(turn, default), Is.EqualTo(AppendResult.Duplicate));
        await store.AppendAsync(Turns.Make(s_session, "q2"), default);
        Assert.That(await store.AppendAsync(turn, default), Is.EqualTo(AppendResult.Duplicate), "still known after a later turn");

        Assert.That(await Redis.Db.ListLengthAsync(RedisKeys.Turns(s_session)), Is.EqualTo(2));
        Assert.That((long)await Redis.Db.HashGetAsync(RedisKeys.Meta(s_session), "n"), Is.EqualTo(2));
    }

    [Test]
    public async Task Append_TrimsToMaxStoredTurns_KeepingTheNewest()
    {
        var store = Store(maxStored: 3);
        var turns = Enumerable.Range(1, 5).Select(i => Turns.Make(s_session, $"q{i}")).ToArray();
        foreach (var turn in turns)
        {
            await store.AppendAsync(turn, default);
        }

        var window = await store.ReadAsync(s_session, 10, default);
        Assert.That(Turns.Questions(window), Is.EqualTo(new[] { "q3", "q4", "q5" }));

        // The dedupe window is the stored list: the meta hash marks exactly the stored turns, so it stays bounded.
        var marks = (await Redis.Db.HashKeysAsync(RedisKeys.Meta(s_session))).Select(k => k.ToString()).Where(k => k.StartsWith("i:", StringComparison.Ordinal));
        Assert.That(marks, Is.EquivalentTo(turns[2..].Select(t => "i:" + t.Id)));
        Assert.That(await store.AppendAsync(turns[4], default), Is.EqualTo(AppendResult.Duplicate));
    }

    [Test]
    public async Task AppendMany_WritesTheTurnsInOrderInOneCall_AsSeparateCallsWould()
    {
        var store = Store(maxStored: 3);
        var first = Turns.Make(s_session, "q1");
        Assert.That(await store.AppendAsync(first, default), Is.EqualTo(AppendResult.Written));
        var more = new[] { first, Turns.Make(s_session, "q2"), Turns.Make(s_session, "q3"), Turns.Make(s_session, "q4"), Turns.Make(s_session, "q5") };
        var calls = await CommandStats.ValueAsync(Redis.Server, "evalsha", "calls");
        var before = first.Generation;

        var results = await store.AppendManyAsync(more, default);

        Assert.That(await CommandStats.ValueAsync(Redis.Server, "evalsha", "calls") - calls, Is.EqualTo(1), "one script call");
        Assert.That(results, Is.EqualTo(new[] { AppendResult.Duplicate, AppendResult.Written, AppendResult.Written, AppendResult.Written, AppendResult.Written }));
        Assert.That(Turns.Questions(await store.ReadAsync(s_session, 10, default)), Is.EqualTo(new[] { "q3", "q4", "q5" }), "in order, trimmed to the max");
        // Each written turn has the generation right after the one before it, and the length right after its push.
        Assert.That(more[1..].Select(t => t.Generation - before), Is.EqualTo(new long[] { 1, 2, 3, 4 }));
        Assert.That(more[1..].Select(t => t.PushedLength), Is.EqualTo(new long[] { 2, 3, 4, 4 }));
        Assert.That(more[0].PushedLength, Is.Zero, "the duplicate is not pushed");
        var meta = RedisKeys.Meta(s_session);
        Assert.That((long)await Redis.Db.HashGetAsync(meta, "n"), Is.EqualTo(5));
        Assert.That((long)await Redis.Db.HashGetAsync(meta, "g"), Is.EqualTo(more[4].Generation));
        Assert.That((string?)await Redis.Db.HashGetAsync(meta, "v"), Is.EqualTo(more[4].Id));
        var marks = (await Redis.Db.HashKeysAsync(meta)).Select(k => k.ToString()).Where(k => k.StartsWith("i:", StringComparison.Ordinal));
        Assert.That(marks, Is.EquivalentTo(more[2..].Select(t => "i:" + t.Id)), "the marks of the stored turns only");
    }

    [Test]
    public void AppendMany_TurnsOfTwoSessions_AreRefused()
    {
        var store = Store();
        var turns = new[] { Turns.Make(s_session, "q1"), Turns.Make(new SessionKey("tenant1", "session-2"), "q2") };
        Assert.ThrowsAsync<ArgumentException>(async () => await store.AppendManyAsync(turns, default));
    }

    [Test]
    public async Task ReadAndAppend_SetAndRefreshTheExpiry()
    {
        var store = Store(ttl: TimeSpan.FromMinutes(10));
        await store.AppendAsync(Turns.Make(s_session, "q1"), default);
        Assert.That(await Redis.Db.KeyTimeToLiveAsync(RedisKeys.Turns(s_session)), Is.GreaterThan(TimeSpan.FromMinutes(9)));

        await Redis.Db.KeyExpireAsync(RedisKeys.Turns(s_session), TimeSpan.FromSeconds(5));
        await Redis.Db.KeyExpireAsync(RedisKeys.Meta(s_session), TimeSpan.FromSeconds(5));
        await store.ReadAsync(s_session, 5, default);

        Assert.That(await Redis.Db.KeyTimeToLiveAsync(RedisKeys.Turns(s_session)), Is.GreaterThan(TimeSpan.FromMinutes(9)));
        Assert.That(await Redis.Db.KeyTimeToLiveAsync(RedisKeys.Meta(s_session)), Is.GreaterThan(TimeSpan.FromMinutes(9)));
    }

    [Test]
    public async Task Read_UnknownSession_IsEmptyAndCreatesNothing()
    {
        var window = await Store().ReadAsync(new SessionKey("t", "nobody"), 20, default);
        Assert.That(window, Is.Empty);
        Assert.That(await Redis.Server.DatabaseSizeAsync(), Is.Zero);
    }

    [Test]
    public async Task Read_SkipsAnElementItCannotRead()
    {
        var store = Store();
        await store.AppendAsync(Turns.Make(s_session, "q1"), default);
        await Redis.Db.ListRightPushAsync(RedisKeys.Turns(s_session), "not json");
        await store.AppendAsync(Turns.Make(s_session, "q2"), default);

        var window = await store.ReadAsync(s_session, 10, default);
        Assert.That(Turns.Questions(window), Is.EqualTo(new[] { "q1", "q2" }));
    }

    private RedisHistoryStore Store(int maxStored = 100, TimeSpan? ttl = null) =>
        new(Connection, new MnemoMetrics(), Options.Create(new StoreOptions { MaxStoredTurns = maxStored, Ttl = ttl ?? TimeSpan.FromDays(1) }));
}
