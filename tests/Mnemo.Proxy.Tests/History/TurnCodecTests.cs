using System.Text;
using System.Text.Json;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Tests.History;

public sealed class TurnCodecTests
{
    [Test]
    public void NewId_IsAVersion7UuidOfTheTime_InHex_AndNeverRepeats()
    {
        var ms = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var ids = Enumerable.Range(0, 10_000).Select(_ => TurnCodec.NewId(ms)).ToList();
        Assert.That(ids.Distinct().Count(), Is.EqualTo(ids.Count));
        foreach (var id in ids.Take(100))
        {
            Assert.That(id, Does.Match("^[0-9a-f]{32}$"));
            var guid = Guid.ParseExact(id, "N");
            Assert.That(guid.Version, Is.EqualTo(7));
            Assert.That(guid.Variant, Is.InRange(8, 11), "RFC 9562 variant (10xx)");
            Assert.That(Convert.ToInt64(id[..12], 16), Is.EqualTo(ms));
        }

        // The form the ids had before (Guid.CreateVersion7), so stored and new ids sort together.
        Assert.That(TurnCodec.NewId(ms)[..12], Is.EqualTo(Guid.CreateVersion7(DateTimeOffset.FromUnixTimeMilliseconds(ms)).ToString("N")[..12]));
        Assert.That(string.CompareOrdinal(TurnCodec.NewId(ms), TurnCodec.NewId(ms + 1)), Is.LessThan(0));
    }

    [Test]
    public void Encode_PutsWhatTheReadPathNeedsFirst_AndReadsBackTheSameMessages()
    {
        var payload = TurnCodec.Encode("0123456789abcdef0123456789abcdef", 1_700_000_000_000, DialectId.AnthropicMessages, 42, new TokenUsage(12, 3, 2, -1), 0,
            static (w, _) =>
            {
                w.WriteRawValue("""{"role":"user","content":"a \"b\""}""");
                w.WriteRawValue("""{"role":"assistant","content":"c"}""");
            });

        var text = Encoding.UTF8.GetString(payload);
        Assert.That(text, Does.StartWith("""{"id":"0123456789abcdef0123456789abcdef","d":"anthropic-messages","tok":42,"ml":"""));
        Assert.That(text, Does.EndWith(""","usage":{"input":12,"output":3,"cache_read":2,"cache_write":-1}}"""));
        using var document = JsonDocument.Parse(payload);
        Assert.That(document.RootElement.GetProperty("ml").GetInt32(), Is.EqualTo(document.RootElement.GetProperty("messages").GetRawText().Length));

        Assert.That(TurnCodec.TryRead(payload, out var turn), Is.True);
        Assert.That(Encoding.UTF8.GetString(turn.Id), Is.EqualTo("0123456789abcdef0123456789abcdef"));
        Assert.That(turn.Tokens, Is.EqualTo(42));
        Assert.That(turn.Dialect, Is.EqualTo(DialectId.AnthropicMessages));
        Assert.That(Encoding.UTF8.GetString(turn.Messages.Span), Is.EqualTo("""{"role":"user","content":"a \"b\""},{"role":"assistant","content":"c"}"""));
        Assert.That(turn.ContinuesToolExchange, Is.False);
        Assert.That(document.RootElement.TryGetProperty("x", out _), Is.False, "written only when set");
    }

    [Test]
    public void Encode_TurnContinuingAToolExchange_FlagsItBeforeTheMessages_AndReadsItBack()
    {
        var payload = TurnCodec.Encode("0123456789abcdef0123456789abcdef", 1_700_000_000_000, DialectId.OpenAIChat, 42, TokenUsage.Unknown, 0,
            static (w, _) =>
            {
                w.WriteRawValue("""{"role":"tool","tool_call_id":"call_abc123","content":"Sunny"}""");
                w.WriteRawValue("""{"role":"assistant","content":"It is sunny."}""");
            },
            continuesToolExchange: true);

        var text = Encoding.UTF8.GetString(payload);
        Assert.That(text, Does.StartWith("""{"id":"0123456789abcdef0123456789abcdef","d":"openai-chat","x":1,"tok":42,"ml":"""));
        Assert.That(TurnCodec.TryRead(payload, out var turn), Is.True);
        Assert.That(turn.ContinuesToolExchange, Is.True);
        Assert.That(turn.Tokens, Is.EqualTo(42));
        Assert.That(Encoding.UTF8.GetString(turn.Messages.Span), Does.StartWith("""{"role":"tool","""));
    }

    [TestCase("""{"id":"x1","d":"openai-chat","x":1,"tok":7,"messages":[{"role":"user","content":"q"}]}""", true)]
    [TestCase("""{"messages":[{"role":"user","content":"q"}],"x":1,"tok":7,"id":"x1","d":"openai-chat"}""", true)]
    [TestCase("""{"id":"x1","d":"openai-chat","tok":7,"ml":31,"messages":[{"role":"user","content":"q"}],"x":1}""", false)]
    [TestCase("""{"id":"x1","d":"openai-chat","x":0,"tok":7,"messages":[{"role":"user","content":"q"}]}""", false)]
    [TestCase("""{"id":"x1","d":"openai-chat","x":"yes","tok":7,"messages":[{"role":"user","content":"q"}]}""", false)]
    [TestCase("""{"id":"x1","d":"openai-chat","tok":7,"messages":[{"role":"user","content":"q"}]}""", false)]
    public void TryRead_ContinuationFlag_ReadWhereverTheParseReachesIt(string element, bool expected)
    {
        Assert.That(TurnCodec.TryRead(Encoding.UTF8.GetBytes(element), out var turn), Is.True);
        Assert.That(turn.ContinuesToolExchange, Is.EqualTo(expected));
        Assert.That(Encoding.UTF8.GetString(turn.Messages.Span), Is.EqualTo("""{"role":"user","content":"q"}"""));
    }

    [TestCase("""{"id":"x1","ts":1,"d":"openai-chat","tok":7,"usage":{"a":[1]},"messages":[{"role":"user","content":"q"}]}""")]
    [TestCase("""{"messages":[{"role":"user","content":"q"}],"tok":7,"id":"x1","d":"openai-chat"}""")]
    [TestCase("""{"ml":999,"messages":[{"role":"user","content":"q"}],"id":"x1","tok":7,"d":"openai-chat"}""")]
    [TestCase("""{"id":"x1","tok":7,"ml":31,"messages":[{"role":"user","content":"q"}],"ts":1,"d":"openai-chat"}""")]
    public void TryRead_ElementsWithoutUsableLength_AreParsedInFull(string element)
    {
        Assert.That(TurnCodec.TryRead(Encoding.UTF8.GetBytes(element), out var turn), Is.True);
        Assert.That(Encoding.UTF8.GetString(turn.Id), Is.EqualTo("x1"));
        Assert.That(turn.Tokens, Is.EqualTo(7));
        Assert.That(Encoding.UTF8.GetString(turn.Messages.Span), Is.EqualTo("""{"role":"user","content":"q"}"""));
        Assert.That(turn.Dialect, Is.EqualTo(DialectId.OpenAIChat));
    }

    [TestCase("not json")]
    [TestCase("""{"id":"x1"}""")]
    [TestCase("""{"messages":[]}""")]
    [TestCase("""{"id":7,"messages":[]}""")]
    [TestCase("""{"id":"x1","messages":[{"role":"user","content":"q"}]}""")]
    [TestCase("""{"id":"x1","d":"klingon","messages":[{"role":"user","content":"q"}]}""")]
    public void TryRead_ElementItCannotUse_IsRejected(string element) =>
        Assert.That(TurnCodec.TryRead(Encoding.UTF8.GetBytes(element), out _), Is.False);
}
