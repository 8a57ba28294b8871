using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.History;

/// <summary>The embedded store keeps the Redis store's promises: dedupe, trim, sliding expiry.</summary>
public sealed class InMemoryHistoryStoreTests
{
    private static readonly SessionKey s_session = new("t", "s");
    private readonly FakeTimeProvider _time = new();

    [Test]
    public async Task Append_SameTurnAgain_AddsNothing()
    {
        using var store = Store();
        var turn = Turns.Make(s_session, "q1");
        Assert.That(await store.AppendAsync(turn, default), Is.EqualTo(AppendResult.Written));
        Assert.That(await store.AppendAsync(turn, default), Is.EqualTo(AppendResult.Duplicate));
        Assert.That((await store.ReadAsync(s_session, 10, default)), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task Append_TrimsToMaxStoredTurns()
    {
        using var store = Store(maxStored: 2);
        foreach (var question in new[] { "q1", "q2", "q3" })
        {
            await store.AppendAsync(Turns.Make(s_session, question), default);
        }

        Assert.That(Turns.Questions((await store.ReadAsync(s_session, 10, default))), Is.EqualTo(new[] { "q2", "q3" }));
        Assert.That(Turns.Questions((await store.ReadAsync(s_session, 1, default))), Is.EqualTo(new[] { "q3" }));
    }

    [Test]
    public async Task Session_ExpiresAfterTheTtl_UnlessReadOrWritten()
    {
        using var store = Store(ttl: TimeSpan.FromMinutes(10));
        await store.AppendAsync(Turns.Make(s_session, "q1"), default);

        _time.Advance(TimeSpan.FromMinutes(9));
        Assert.That((await store.ReadAsync(s_session, 10, default)), Has.Length.EqualTo(1), "a read slides the expiry");
        _time.Advance(TimeSpan.FromMinutes(9));
        Assert.That((await store.ReadAsync(s_session, 10, default)), Has.Length.EqualTo(1));

        _time.Advance(TimeSpan.FromMinutes(11));
        Assert.That((await store.ReadAsync(s_session, 10, default)), Is.Empty);
    }

    [Test]
    public async Task Sweeper_RemovesExpiredSessions()
    {
        using var store = Store(ttl: TimeSpan.FromMinutes(1));
        await store.AppendAsync(Turns.Make(s_session, "q1"), default);
        await store.AppendAsync(Turns.Make(new SessionKey("t", "other"), "q1"), default);
        Assert.That(store.SessionCount, Is.EqualTo(2));

        _time.Advance(TimeSpan.FromMinutes(3));
        Assert.That(store.SessionCount, Is.Zero);
    }

    private InMemoryHistoryStore Store(int maxStored = 100, TimeSpan? ttl = null) =>
        new(Options.Create(new StoreOptions { MaxStoredTurns = maxStored, Ttl = ttl ?? TimeSpan.FromDays(1) }), _time);
}
