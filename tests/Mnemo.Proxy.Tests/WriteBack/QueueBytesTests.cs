using System.Net;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.WriteBack;

/// <summary>The write-back queue is bounded in bytes as well as in turns: past the bound turns are dropped, not held.</summary>
public sealed class QueueBytesTests : FunctionalTest
{
    private const int QueueBytes = 4096;
    private const int Turns = 12;

    [Test]
    public async Task TurnsOverTheByteBound_WhileRedisRefusesWrites_AreDroppedAndCounted_TheOthersWrittenOnceItAccepts()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Mnemo:WriteBack:QueueBytes"] = QueueBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            // However long the turns wait, they are not dropped for their retries: only the bound drops them here.
            ["Mnemo:Redis:WriteRetries"] = "100",
        });

        // Writes are refused (out of memory) while reads still work: every turn waits in the queue for its retry.
        await Redis.Server.ConfigSetAsync("maxmemory-policy", "noeviction");
        await Redis.Server.ConfigSetAsync("maxmemory", "1");
        string metrics;
        try
        {
            for (var i = 0; i < Turns; i++)
            {
                // About 1.3 KB stored each, all the same size: the bound holds three.
                var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"q{i:D2} " + new string('x', 1000)), session: $"bytes-{i:D2}"));
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), "a dropped turn is still answered");
            }

            metrics = await Eventually.ValueAsync(
                () => proxy.Management.GetStringAsync("/metrics"),
                m => WriteBackTests.Metric(m, "mnemo_writeback_total{outcome=\"dropped\"}") > 0,
                "turns over the bound to be dropped");
        }
        finally
        {
            await Redis.Server.ConfigSetAsync("maxmemory", "0");
        }

        // What the queue held while Redis refused: within the bound.
        var heldTurns = WriteBackTests.Metric(metrics, "mnemo_writeback_queue_depth");
        var heldBytes = WriteBackTests.Metric(metrics, "mnemo_writeback_queue_bytes");
        var dropped = WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"dropped\"}");

        var stored = await Eventually.ValueAsync(StoredSessionsAsync, s => s.Count == (int)heldTurns, "the held turns to be written");
        var size = (await Redis.Db.ListGetByIndexAsync(TurnsKey("bytes-00"), 0)).Length();
        Assert.That(size, Is.InRange(1000, QueueBytes / 2), "each turn is over a thousand bytes");
        var fit = QueueBytes / (int)size;
        Assert.That(stored, Is.EqualTo(Enumerable.Range(0, fit).Select(i => $"bytes-{i:D2}")), "the first turns, as many as fit in the bound, were written");
        Assert.That(heldBytes, Is.EqualTo(fit * size).Within(fit * 8), "mnemo_writeback_queue_bytes while they waited");
        Assert.That(heldBytes, Is.LessThanOrEqualTo(QueueBytes));
        Assert.That(dropped, Is.EqualTo(Turns - fit), "every other turn was dropped and counted");
        Assert.That(proxy.Logs.All, Does.Contain("Mnemo:WriteBack:QueueBytes"), "the drop is logged naming the setting");
        Assert.That(proxy.Logs.All, Does.Not.Contain("bytes-0").And.Not.Contain("xxxxxxxx"));

        metrics = await Eventually.ValueAsync(
            () => proxy.Management.GetStringAsync("/metrics"),
            m => WriteBackTests.Metric(m, "mnemo_writeback_queue_depth") == 0,
            "the queue to empty");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_queue_bytes"), Is.Zero);
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_writeback_total{outcome=\"written\"}"), Is.EqualTo(fit));
    }

    [Test]
    public void QueueBytesBelowOneKilobyte_FailsStart_NamingTheKey()
    {
        var error = Assert.CatchAsync(async () => await (await ProxyHost.StartAsync(
            "http://127.0.0.1:9", redis: null, new Dictionary<string, string?> { ["Mnemo:WriteBack:QueueBytes"] = "100" })).DisposeAsync());
        Assert.That(error!.Message, Does.Contain("Mnemo:WriteBack:QueueBytes"));
    }

    private async Task<List<string>> StoredSessionsAsync()
    {
        var sessions = new List<string>();
        for (var i = 0; i < Turns; i++)
        {
            if (await Redis.Db.ListLengthAsync(TurnsKey($"bytes-{i:D2}")) > 0)
            {
                sessions.Add($"bytes-{i:D2}");
            }
        }

        return sessions;
    }
}
