using System.Text;
using Mnemo.Proxy.Dialects;

namespace Mnemo.Proxy.Tests.Dialects;

public sealed class JsonEscapesTests
{
    [TestCase("""{"a":"plain"}""", false)]
    [TestCase("""{"a":"\ud83d\ude00"}""", false)]
    [TestCase("""{"a":"\uD83D\uDE00 twice \ud83d\ude00"}""", false)]
    [TestCase("""{"a":"\\ud800"}""", false)]
    [TestCase("""{"a":"\u0041\u00e9"}""", false)]
    [TestCase("""{"a":"\ud800"}""", true)]
    [TestCase("""{"a":"\udc00"}""", true)]
    [TestCase("""{"a":"\ud83dx"}""", true)]
    [TestCase("""{"a":"\ud83d\u0041"}""", true)]
    [TestCase("""{"a":"\\\ud800"}""", true)]
    [TestCase("""{"\ud800":1}""", true)]
    [TestCase("""{"a":"\ud83d""", true)]
    public void HasLoneSurrogate_FindsOnlyUnpairedHalves(string json, bool expected) =>
        Assert.That(JsonEscapes.HasLoneSurrogate(Encoding.UTF8.GetBytes(json)), Is.EqualTo(expected), json);

    [Test]
    public void ResponseParsers_AnEventWithALoneSurrogateEscape_FailTheAnswerInsteadOfThrowingLater()
    {
        var anthropic = new AnthropicMessagesDialect();
        var stream = Encoding.UTF8.GetBytes(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n" +
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"\\ud800\":1,\"text\":\"\"}}\n\n" +
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        using var parser = DialectHarness.Parse(anthropic, "text/event-stream", stream);
        Assert.That(parser.Failure, Is.EqualTo("response is not valid Unicode text"));

        var ollama = new OllamaChatDialect();
        using var lines = DialectHarness.Parse(ollama, "application/x-ndjson",
            Encoding.UTF8.GetBytes("{\"message\":{\"role\":\"assistant\",\"content\":\"\\udc00\"},\"done\":true}\n"));
        Assert.That(lines.Failure, Is.EqualTo("response is not valid Unicode text"));
    }
}
