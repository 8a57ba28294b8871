using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>
/// Read-your-writes by construction: a turn is visible before the client can see the end of its answer, on a cold
/// process as on a warm one; and Strict consistency across replicas sharing one Redis.
/// </summary>
public sealed class ConsistencyTests : FunctionalTest
{
    private const int Tries = 10;

    [TestCase(false, false)]
    [TestCase(false, true)]
    [TestCase(true, false)]
    [TestCase(true, true)]
    public async Task FreshProcess_SecondTurnSentTheInstantTheFirstEnds_CarriesTheFirst(bool redis, bool stream)
    {
        var missed = 0;
        for (var attempt = 0; attempt < Tries; attempt++)
        {
            Upstream.Reset();
            await Redis.FlushAsync();
            var (started, proxyPort, _) = await MnemoProcess.StartBuiltReadyAsync(
                (proxy, managementPort) =>
                [
                    $"--Mnemo:Upstream={Upstream.Url}",
                    $"--ConnectionStrings:Redis={(redis ? Redis.ConnectionString : "")}",
                    $"--Kestrel:Endpoints:Proxy:Url=http://127.0.0.1:{proxy}",
                    $"--Kestrel:Endpoints:Management:Url=http://127.0.0.1:{managementPort}",
                ],
                new Dictionary<string, string?> { ["ConnectionStrings__Redis"] = null });
            using var process = started;
            // Two clients, two connections, as two curl commands or an SDK's connection pool would use: Kestrel reads a
            // connection's next request only once the last one's pipeline has returned, which would hide the race.
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{proxyPort}") };
            using var other = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{proxyPort}") };

            // No pause: the next request leaves the moment the first answer has been read, as an agent loop's does.
            using var first = await client.SendAsync(ProxyHost.Chat(UserTurn($"My name is Ada ({attempt}).", stream), session: "cold"));
            await first.Content.ReadAsByteArrayAsync();
            using var second = await other.SendAsync(ProxyHost.Chat(UserTurn("What is my name?", stream), session: "cold"));
            await second.Content.ReadAsByteArrayAsync();

            Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            if (!Upstream.Requests[1].BodyText.Contains($"My name is Ada ({attempt}).", StringComparison.Ordinal))
            {
                missed++;
            }

            process.Terminate();
            await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        }

        Assert.That(missed, Is.Zero, $"{missed} of {Tries} fresh processes forgot the first turn");
    }

    [Test]
    public async Task TwoReplicas_AgentLoopAlternatingReplicas_StrictMissesNothing_ReplicaIsMeasured()
    {
        await using var a = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Memory:MaxContextTurns"] = "4" });
        await using var b = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Memory:MaxContextTurns"] = "4" });

        var strict = await AgentLoopAsync([a, b], "strict", "strict-loop");

        // A Replica request on the other replica may not see the call just answered, and then carries a tool result
        // without its call: a provider rejects it. That is what this loop measures, each one counted as missed (the
        // forwarded body checked below), so the fake upstream answers it instead of rejecting it.
        Upstream.ValidatesRequests = false;
        var replica = await AgentLoopAsync([a, b], "replica", "replica-loop");
        TestContext.Out.WriteLine($"agent loop over two replicas, 200 requests each: Strict missed {strict}, Replica missed {replica}");

        Assert.That(strict, Is.Zero, "with Strict, every request on either replica sees the turn just answered by the other");
        Assert.That(await Redis.Db.ListLengthAsync(TurnsKey("strict-loop")), Is.EqualTo(100), "every turn stored (trimmed to MaxStoredTurns)");
    }

    [Test]
    public async Task Strict_NothingBeforeTheFirstByte_TheLastBytesWaitForTheWrite()
    {
        await using var relay = RedisRelay.Start(Redis);
        await using var proxy = await StartProxyAsync(RedisRelay.PatientReads, redis: relay.ConnectionString);
        relay.Delay = TimeSpan.FromMilliseconds(100);
        Upstream.EventDelay = TimeSpan.FromMilliseconds(50);
        relay.Reset();

        using var request = ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "strict");
        request.Headers.Add("X-Mnemo-Consistency", "strict");
        var sent = Stopwatch.GetTimestamp();
        using var response = await proxy.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var headers = Stopwatch.GetTimestamp();
        var body = await response.Content.ReadAsByteArrayAsync();
        var lastByte = Stopwatch.GetTimestamp();

        Assert.That(body, Is.EqualTo(Upstream.Fixture("stream.sse")));
        Assert.That(Upstream.LastRequest.Headers.ContainsKey("X-Mnemo-Consistency"), Is.False, "Mnemo's control header is not forwarded");
        var trips = relay.DataRoundTrips;
        Assert.That(trips.Select(t => t.ToString()), Is.EqualTo(new[] { RoundTripShapes.Read, RoundTripShapes.Write }), "one read (Strict always reads Redis), one write, nothing else");
        var read = trips[0];
        var write = trips[1];
        Assert.That(Stopwatch.GetElapsedTime(sent, headers), Is.LessThan(TimeSpan.FromMilliseconds(400)),
            "before the first byte: the read's round trip (200 ms through this relay), not a write");
        Assert.That(write.StartedAt, Is.GreaterThan(Upstream.EventTimes[^2]), "the write starts once the answer's last event has been read");
        Assert.That(Stopwatch.GetElapsedTime(write.StartedAt, lastByte), Is.GreaterThan(TimeSpan.FromMilliseconds(180)),
            "the client's last bytes waited for the write's round trip");
        Assert.That(await Redis.Db.ListLengthAsync(TurnsKey("strict")), Is.EqualTo(1), "stored when the client had its answer");
        Assert.That(read.StartedAt, Is.LessThan(headers));
    }

    [Test]
    public async Task Strict_RedisDown_TheResponseCompletes_AndTheTurnIsRetriedUntilWritten()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Mnemo:Memory:Consistency"] = "Strict",
            ["Mnemo:Redis:WriteTimeout"] = "00:00:00.300",
            ["Mnemo:Redis:WriteRetries"] = "30",
            ["Mnemo:Redis:WriteRetryDelay"] = "00:00:00.200",
            ["Mnemo:Redis:WriteRetryMaxDelay"] = "00:00:00.500",
        });
        await Redis.StopAsync();

        var started = Stopwatch.GetTimestamp();
        var (response, body) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!"), session: "down"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("completion.json")));
        Assert.That(Stopwatch.GetElapsedTime(started), Is.LessThan(TimeSpan.FromSeconds(3)), "the write's timeout bounds the wait");

        await Redis.StartAsync(CancellationToken.None);
        await WaitForTurnsAsync("down", 1);
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("mnemo_writeback_total{outcome=\"retried\"}"));
        Assert.That(metrics, Does.Not.Contain("mnemo_writeback_total{outcome=\"dropped\"} 1"));
    }

    [Test]
    public async Task InvalidConsistencyHeader_Gets400()
    {
        await using var proxy = await StartProxyAsync();
        using var request = ProxyHost.Chat(UserTurn("Hello!"), session: "bad");
        request.Headers.Add("X-Mnemo-Consistency", "eventually");
        var (response, body) = await SendAsync(proxy, request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("invalid_mnemo_consistency"));
        Assert.That(Upstream.Requests, Is.Empty);
    }

    /// <summary>
    /// 200 requests alternating replicas with no pause: a question gets a tool call, the tool result goes to the other
    /// replica, and so on. Returns how many requests did not carry the turn answered just before (on the other replica).
    /// </summary>
    private async Task<int> AgentLoopAsync(ProxyHost[] replicas, string consistency, string session)
    {
        var missed = 0;
        for (var i = 0; i < 200; i++)
        {
            var toolResult = i % 2 == 1;
            Upstream.JsonFixture = toolResult ? "completion.json" : "completion-tool-calls.json";
            var body = toolResult
                ? $$"""{"model":"gpt-4o-mini","messages":[{"role":"tool","tool_call_id":"call_abc123","content":"sunny {{i}}"}]}"""
                : $$"""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"question {{i}}"}]}""";
            using var request = ProxyHost.Chat(body, session);
            request.Headers.Add("X-Mnemo-Consistency", consistency);
            var (response, _) = await SendAsync(replicas[i % 2], request);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"{consistency} request {i}");
            if (i == 0)
            {
                continue;
            }

            var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body).RootElement;
            // The turn just answered by the other replica: its question, or its tool result.
            var previous = toolResult ? $"question {i - 1}" : $"sunny {i - 1}";
            var carried = forwarded.GetRawText().Contains(previous, StringComparison.Ordinal);
            if (!carried || ProviderRules.OpenAIChat(forwarded) is not null)
            {
                missed++;
            }
        }

        return missed;
    }
}
