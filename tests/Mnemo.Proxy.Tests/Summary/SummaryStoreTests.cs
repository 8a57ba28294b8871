using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Summary;
using Mnemo.Proxy.Tests.Common;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Summary;

/// <summary>The summary's compare-and-set and the append's guard, on a real redis-server and on the embedded store.</summary>
public sealed class SummaryStoreTests : RedisStoreTest
{
    private static readonly SessionKey s_session = new("tenant1", "session-s");

    private IHistoryStore Store(bool redis, int maxStored = 3, bool summary = true, int hardCap = 6)
    {
        var store = Options.Create(new StoreOptions { MaxStoredTurns = maxStored });
        var options = Options.Create(new SummaryOptions { Enabled = summary, Model = "m", HardMaxStoredTurns = hardCap });
        return redis
            ? new RedisHistoryStore(Connection, new MnemoMetrics(), store, options)
            : new InMemoryHistoryStore(store, TimeProvider.System, options);
    }

    private static async Task<Turn[]> AppendAsync(IHistoryStore store, int count)
    {
        var turns = Enumerable.Range(1, count).Select(i => Turns.Make(s_session, "q" + i)).ToArray();
        foreach (var turn in turns)
        {
            Assert.That(await store.AppendAsync(turn, default), Is.EqualTo(AppendResult.Written));
        }

        return turns;
    }

    private static byte[] Text(string text) => SummaryCall.Escape(text);

    [TestCase(true)]
    [TestCase(false)]
    public async Task WriteSummary_TwoRunsFromTheSameSummary_OnlyTheFirstIsStored(bool redis)
    {
        var store = Store(redis);
        var turns = await AppendAsync(store, 3);

        Assert.That(await store.WriteSummaryAsync(s_session, null, turns[0].Id, Text("first"), 5, default), Is.EqualTo(SummaryWrite.Written));
        Assert.That(await store.WriteSummaryAsync(s_session, null, turns[1].Id, Text("stale"), 5, default), Is.EqualTo(SummaryWrite.Superseded),
            "a run that started from no summary does not replace the one written meanwhile");
        var read = await store.ReadWithSummaryAsync(s_session, 10, default);
        Assert.That(SummaryCall.Unescape(read.Summary!.Text), Is.EqualTo("first"));
        Assert.That(read.Summary.CoveredId, Is.EqualTo(turns[0].Id));
        Assert.That(read.Covered, Is.EqualTo(1));
        Assert.That(read.Length, Is.EqualTo(3));

        Assert.That(await store.WriteSummaryAsync(s_session, turns[0].Id, turns[1].Id, Text("second"), 7, default), Is.EqualTo(SummaryWrite.Written));
        read = await store.ReadWithSummaryAsync(s_session, 10, default);
        Assert.That((SummaryCall.Unescape(read.Summary!.Text), read.Summary.Tokens, read.Covered), Is.EqualTo(("second", 7, 2L)));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task WriteSummary_ConcurrentRuns_ExactlyOneWins(bool redis)
    {
        var store = Store(redis);
        var turns = await AppendAsync(store, 3);
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            store.WriteSummaryAsync(s_session, null, turns[i % 2].Id, Text("run " + i), 5, default).AsTask()));
        Assert.That(results.Count(r => r == SummaryWrite.Written), Is.EqualTo(1));
        var winner = Array.IndexOf(results, SummaryWrite.Written);
        var read = await store.ReadWithSummaryAsync(s_session, 10, default);
        Assert.That(SummaryCall.Unescape(read.Summary!.Text), Is.EqualTo("run " + winner));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task Append_SummaryOn_KeepsUnsummarisedTurnsUpToTheHardCap(bool redis)
    {
        var store = Store(redis, maxStored: 3, hardCap: 6);
        var turns = await AppendAsync(store, 5);
        Assert.That(Turns.Questions((await store.ReadWithSummaryAsync(s_session, 100, default)).Turns), Is.EqualTo(new[] { "q1", "q2", "q3", "q4", "q5" }));

        // Covering q1..q2 lets exactly those go on the next write.
        await store.WriteSummaryAsync(s_session, null, turns[1].Id, Text("q1 q2"), 5, default);
        await store.AppendAsync(Turns.Make(s_session, "q6"), default);
        var read = await store.ReadWithSummaryAsync(s_session, 100, default);
        Assert.That(Turns.Questions(read.Turns), Is.EqualTo(new[] { "q3", "q4", "q5", "q6" }));
        Assert.That(read.Covered, Is.EqualTo(0));

        // Nothing covered: kept up to the hard cap of six, then the oldest goes anyway.
        foreach (var q in new[] { "q7", "q8", "q9" })
        {
            await store.AppendAsync(Turns.Make(s_session, q), default);
        }

        Assert.That(Turns.Questions((await store.ReadWithSummaryAsync(s_session, 100, default)).Turns), Is.EqualTo(new[] { "q4", "q5", "q6", "q7", "q8", "q9" }));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task Append_SummaryOff_TrimsToMaxStoredTurns(bool redis)
    {
        var store = Store(redis, maxStored: 3, summary: false);
        await AppendAsync(store, 5);
        Assert.That(Turns.Questions((await store.ReadWithSummaryAsync(s_session, 100, default)).Turns), Is.EqualTo(new[] { "q3", "q4", "q5" }));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task WriteSummary_SessionGone_IsSuperseded(bool redis)
    {
        var store = Store(redis);
        Assert.That(await store.WriteSummaryAsync(s_session, null, "0123", Text("x"), 5, default), Is.EqualTo(SummaryWrite.Superseded));
        Assert.That(await Redis.Server.DatabaseSizeAsync(), Is.Zero);
    }
}
