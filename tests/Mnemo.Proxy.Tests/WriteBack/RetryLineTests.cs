using System.Net;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.WriteBack;

/// <summary>A turn waiting for its retry holds up its own session's later turns, and nothing else.</summary>
public sealed class RetryLineTests : FunctionalTest
{
    [Test]
    public async Task TurnWaitingForItsRetry_KeepsItsSessionsLaterTurnBehindIt_WhileOtherSessionsAreWritten()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Mnemo:Redis:WriteRetries"] = "100",
            ["Mnemo:Redis:WriteRetryDelay"] = "00:00:00.500",
            ["Mnemo:Redis:WriteRetryMaxDelay"] = "00:00:00.500",
        });

        // One session's writes are refused (its meta key is not a hash: WRONGTYPE, nothing written); Redis is otherwise fine.
        await Redis.Db.StringSetAsync(MetaKey("stuck"), "not a hash");
        try
        {
            foreach (var (session, text) in new[] { ("stuck", "first"), ("stuck", "second"), ("free", "meanwhile") })
            {
                var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn(text), session: session));
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            }

            // Written while the stuck session's first turn keeps failing and waiting for its next retry.
            await WaitForTurnsAsync("free", 1);
            await Eventually.TrueAsync(
                async () => WriteBackTests.Metric(await proxy.Management.GetStringAsync("/metrics"), "mnemo_writeback_total{outcome=\"retried\"}") >= 2,
                "the stuck turn to be retried");
            Assert.That(await Redis.Db.ListLengthAsync(TurnsKey("stuck")), Is.Zero);

            // Read-your-writes meanwhile: both stuck turns are injected, in order, from the pending turns.
            var (next, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("third"), session: "stuck"));
            Assert.That(Header(next, "X-Mnemo-Context-Turns"), Is.EqualTo("2"));
        }
        finally
        {
            await Redis.Db.KeyDeleteAsync(MetaKey("stuck"));
        }

        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("stuck"), t => t.Length == 3, "the stuck session's turns once Redis accepts them");
        Assert.That(turns.Select(t => t.GetProperty("messages")[0].GetProperty("content").GetString()), Is.EqualTo(new[] { "first", "second", "third" }));
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"dropped\"}"), Is.Zero);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"written\"}"), Is.EqualTo(4));
    }
}
