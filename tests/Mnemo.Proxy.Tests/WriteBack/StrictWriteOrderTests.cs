using System.Net;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.WriteBack;

/// <summary>A Strict turn never overtakes an earlier turn of its session that is still waiting for a retry.</summary>
public sealed class StrictWriteOrderTests : FunctionalTest
{
    [Test]
    public async Task StrictTurn_WhileTheSessionsEarlierTurnWaitsForARetry_IsStoredAfterIt()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Mnemo:Memory:Consistency"] = "Strict",
            // The first retry waits about a second (jittered): long enough for the second turn to come and go.
            ["Mnemo:Redis:WriteRetryDelay"] = "00:00:01",
            ["Mnemo:Redis:WriteRetryMaxDelay"] = "00:00:01",
        });

        // Writes are refused (out of memory) while reads still work: the first turn's write fails and waits for a retry.
        await Redis.Server.ConfigSetAsync("maxmemory-policy", "noeviction");
        await Redis.Server.ConfigSetAsync("maxmemory", "1");
        try
        {
            var (first, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("first"), session: "order"));
            Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            // Its Strict attempt, the writer's retry, and the retry pipeline's first attempt have failed: it is waiting.
            await Eventually.TrueAsync(async () => Metric(await proxy.Management.GetStringAsync("/metrics")) >= 3, "the first turn's retry to wait");
        }
        finally
        {
            await Redis.Server.ConfigSetAsync("maxmemory", "0");
        }

        // Redis accepts writes again, and the first turn is still waiting: written now, the second would come first.
        var (second, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("second"), session: "order"));
        Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Header(second, "X-Mnemo-Memory"), Is.EqualTo("hit"));

        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("order"), t => t.Length == 2, "both turns written", TimeSpan.FromSeconds(15));
        Assert.That(turns.Select(t => t.GetProperty("messages")[0].GetProperty("content").GetString()), Is.EqualTo(new[] { "first", "second" }));
        Assert.That(proxy.Logs.All, Does.Contain("waits behind an earlier turn of its session"));
    }

    private static double Metric(string metrics) =>
        metrics.Split('\n').Where(l => l.StartsWith("mnemo_writeback_total{outcome=\"retried\"} ", StringComparison.Ordinal))
            .Select(l => double.Parse(l.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture)).SingleOrDefault();
}
