using System.Diagnostics;
using System.Net;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.History;

/// <summary>
/// Round trips to Redis counted on the wire by a relay, not by the code under test: one per read, one per write,
/// none on the response path.
/// </summary>
public sealed class RedisRoundTripTests : FunctionalTest
{
    private static readonly Dictionary<string, string?> s_patientReads = new() { ["Mnemo:Redis:ReadTimeout"] = "00:00:05" };

    [Test]
    public async Task EachMemoryRequest_ReadsOnceWhenNotCached_NeverWhenCached_AndWritesOnce()
    {
        await using var relay = RedisRelay.StartCounting(Redis);
        await using var proxy = await ServingProxyAsync(RedisRelay.PatientReads, redis: relay.ConnectionString);

        for (var turn = 1; turn <= 4; turn++)
        {
            relay.Reset();
            var forwardedBefore = Upstream.Requests.Count;
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn($"question {turn}", stream: turn % 2 == 0), session: "trips"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(Upstream.Requests, Has.Count.EqualTo(forwardedBefore + 1));
            await WaitForTurnsAsync("trips", turn);
            await Task.Delay(100);

            Assert.That(relay.DataRoundTrips.Select(t => t.ToString()), Is.EqualTo(RoundTripShapes.OfTurn(turn)),
                $"turn {turn}: one batch to read (window, meta fields and expiry refresh) when the session is not cached (the first request), none after; one script call to write, nothing else");
        }
    }

    [Test]
    public async Task WriteBack_AddsNoRoundTripBetweenUpstreamEndAndTheClientsLastByte()
    {
        // Every round trip through this relay takes at least 400 ms, so one on the response path could not hide.
        await using var relay = RedisRelay.Start(Redis);
        await using var proxy = await StartProxyAsync(s_patientReads, redis: relay.ConnectionString);
        relay.Delay = TimeSpan.FromMilliseconds(200);
        relay.Reset();

        using var response = await proxy.Client.SendAsync(ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "path"), HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsByteArrayAsync();
        var lastByte = Stopwatch.GetTimestamp();
        var upstreamEnd = Upstream.LastResponseEnded;

        Assert.That(body, Is.EqualTo(Upstream.Fixture("stream.sse")));
        var gap = Stopwatch.GetElapsedTime(upstreamEnd, lastByte);
        Assert.That(gap, Is.LessThan(TimeSpan.FromMilliseconds(150)), "the client had its last byte without waiting on Redis");

        await WaitForTurnsAsync("path", 1);
        var trips = relay.DataRoundTrips;
        Assert.That(trips, Has.Count.EqualTo(2));
        Assert.That(trips[0].StartedAt, Is.LessThan(upstreamEnd), "the read happened before forwarding");
        Assert.That(Stopwatch.GetElapsedTime(trips[1].StartedAt, lastByte), Is.LessThan(TimeSpan.FromMilliseconds(50)),
            "the write was not sent until the response had gone out");
    }
}
