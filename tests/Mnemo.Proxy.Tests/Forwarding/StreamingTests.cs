using System.Diagnostics;
using System.Net;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>The response is streamed through, never buffered: each SSE event reaches the client as soon as the upstream sent it.</summary>
public sealed class StreamingTests : FunctionalTest
{
    [TestCase("paced", TestName = "Sse_WithMemory_EachEventReachesTheClientBeforeTheUpstreamSendsTheNext")]
    [TestCase(null, TestName = "Sse_WithoutSession_EachEventReachesTheClientBeforeTheUpstreamSendsTheNext")]
    public async Task Sse_EachEventReachesTheClientBeforeTheUpstreamSendsTheNext(string? session)
    {
        Upstream.EventDelay = TimeSpan.FromMilliseconds(200);
        await using var proxy = await StartProxyAsync();
        var expected = FakeUpstream.SplitEvents(Upstream.Fixture("stream.sse"));

        using var response = await proxy.Client.SendAsync(
            ProxyHost.Chat(UserTurn("Hello!", stream: true), session), HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var stream = await response.Content.ReadAsStreamAsync();
        var received = new MemoryStream();
        var arrivals = new List<long>();
        var buffer = new byte[4096];
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            received.Write(buffer, 0, read);
            var complete = CountEvents(received.ToArray());
            while (arrivals.Count < complete)
            {
                arrivals.Add(Stopwatch.GetTimestamp());
            }
        }

        Assert.That(received.ToArray(), Is.EqualTo(expected.SelectMany(e => e).ToArray()), "every byte, in order");
        var sent = Upstream.EventTimes;
        Assert.That(arrivals, Has.Count.EqualTo(expected.Count));
        Assert.That(sent, Has.Count.EqualTo(expected.Count));
        for (var i = 0; i + 1 < expected.Count; i++)
        {
            Assert.That(arrivals[i], Is.LessThan(sent[i + 1]),
                $"event {i} reached the client {Stopwatch.GetElapsedTime(sent[i + 1], arrivals[i]).TotalMilliseconds:F0} ms after the upstream sent event {i + 1}");
        }
    }

    private static int CountEvents(byte[] bytes)
    {
        var count = 0;
        for (var i = 0; i + 1 < bytes.Length; i++)
        {
            if (bytes[i] == '\n' && bytes[i + 1] == '\n')
            {
                count++;
                i++;
            }
        }

        return count;
    }
}
