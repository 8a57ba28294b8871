using System.Text;
using System.Text.Json;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Tests.History;

public sealed class TurnCodecTests
{
    [Test]
    public void Encode_PutsWhatTheReadPathNeedsFirst_AndReadsBackTheSameMessages()
    {
        var payload = TurnCodec.Encode("0123456789abcdef0123456789abcdef", 1_700_000_000_000, "openai-chat", 42, """{"prompt_tokens":1,"messages":[9]}"""u8, 0,
            static (w, _) =>
            {
                w.WriteRawValue("""{"role":"user","content":"a \"b\""}""");
                w.WriteRawValue("""{"role":"assistant","content":"c"}""");
            });

        var text = Encoding.UTF8.GetString(payload);
        Assert.That(text, Does.StartWith("""{"id":"0123456789abcdef0123456789abcdef","tok":42,"ml":"""));
        using var document = JsonDocument.Parse(payload);
        Assert.That(document.RootElement.GetProperty("ml").GetInt32(), Is.EqualTo(document.RootElement.GetProperty("messages").GetRawText().Length));

        Assert.That(TurnCodec.TryRead(payload, out var turn), Is.True);
        Assert.That(Encoding.UTF8.GetString(turn.Id), Is.EqualTo("0123456789abcdef0123456789abcdef"));
        Assert.That(turn.Tokens, Is.EqualTo(42));
        Assert.That(Encoding.UTF8.GetString(turn.Messages.Span), Is.EqualTo("""{"role":"user","content":"a \"b\""},{"role":"assistant","content":"c"}"""));
    }

    [TestCase("""{"id":"x1","ts":1,"d":"openai-chat","tok":7,"usage":{"a":[1]},"messages":[{"role":"user","content":"q"}]}""")]
    [TestCase("""{"messages":[{"role":"user","content":"q"}],"tok":7,"id":"x1"}""")]
    [TestCase("""{"ml":999,"messages":[{"role":"user","content":"q"}],"id":"x1","tok":7}""")]
    public void TryRead_ElementsWithoutUsableLength_AreParsedInFull(string element)
    {
        Assert.That(TurnCodec.TryRead(Encoding.UTF8.GetBytes(element), out var turn), Is.True);
        Assert.That(Encoding.UTF8.GetString(turn.Id), Is.EqualTo("x1"));
        Assert.That(turn.Tokens, Is.EqualTo(7));
        Assert.That(Encoding.UTF8.GetString(turn.Messages.Span), Is.EqualTo("""{"role":"user","content":"q"}"""));
    }

    [TestCase("not json")]
    [TestCase("""{"id":"x1"}""")]
    [TestCase("""{"messages":[]}""")]
    [TestCase("""{"id":7,"messages":[]}""")]
    public void TryRead_ElementItCannotUse_IsRejected(string element) =>
        Assert.That(TurnCodec.TryRead(Encoding.UTF8.GetBytes(element), out _), Is.False);
}
