using System.Text;
using Mnemo.Proxy.Dialects;

namespace Mnemo.Proxy.Tests.Dialects;

public sealed class SseReaderTests
{
    [TestCase("data: a\n\ndata: b\n\n")]
    [TestCase("data: a\r\n\r\ndata: b\r\n\r\n")]
    [TestCase("data: a\r\rdata: b\r\r")]
    [TestCase(": comment\ndata:a\nid: 7\nretry: 10\n\ndata:b\n\n")]
    public void Feed_AnyLineEnding_DeliversEachEvent(string stream)
    {
        Assert.That(Events(stream, chunk: 1), Is.EqualTo(new[] { "|a", "|b" }));
        Assert.That(Events(stream, chunk: 1000), Is.EqualTo(new[] { "|a", "|b" }));
    }

    [Test]
    public void Feed_MultiLineDataAndEventType_AreJoinedAsTheSpecSays()
    {
        Assert.That(Events("event: message_start\ndata: one\ndata: two\n\n", chunk: 3), Is.EqualTo(new[] { "message_start|one\ntwo" }));
    }

    [Test]
    public void Complete_DeliversALastEventWithoutItsBlankLine()
    {
        Assert.That(Events("data: a\n\ndata: [DONE]", chunk: 4), Is.EqualTo(new[] { "|a", "|[DONE]" }));
    }

    [Test]
    public void Feed_BlankLinesWithoutData_DeliverNothing()
    {
        Assert.That(Events("\n\n\n: keep-alive\n\n", chunk: 2), Is.Empty);
    }

    private static List<string> Events(string stream, int chunk)
    {
        var sink = new Sink();
        using var reader = new SseReader();
        var bytes = Encoding.UTF8.GetBytes(stream);
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            reader.Feed(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)), sink);
        }

        reader.Complete(sink);
        return sink.Events;
    }

    private sealed class Sink : ISseSink
    {
        public List<string> Events { get; } = [];

        public void OnEvent(ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data) =>
            Events.Add(Encoding.UTF8.GetString(eventType) + "|" + Encoding.UTF8.GetString(data));
    }
}
