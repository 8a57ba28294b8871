using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Summary;

namespace Mnemo.Proxy.Tests.Summary;

/// <summary>Where each API gets the summary: the bytes forwarded upstream, for every shape of its instruction slot.</summary>
public sealed class SummaryInjectionTests
{
    private const string Text = "Earlier: the user is \"Ada\"\nand likes tea.";
    private const string AnthropicTurn = """{"role":"user","content":"q1"},{"role":"assistant","content":"a1"}""";

    private static string Spliced(Dialect dialect, string body, string? history = null)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var plan = new SplicePlan();
        Assert.That(dialect.ParseRequest(bytes, false, plan).Outcome, Is.EqualTo(ParseOutcome.Splice));
        var read = new ReadResult([], TimeSpan.Zero, new StoredSummary(SummaryCall.Escape(Text), "0123", 12));
        ReadOnlyMemory<byte>[] segments = history is null ? [] : [Encoding.UTF8.GetBytes(history)];
        var count = segments.Length;
        var all = SummaryWindow.Inject(read, dialect, plan, segments, ref count, out var instructions);
        var used = all.AsSpan(0, count);
        var destination = new byte[Splice.Length(bytes.Length, plan, used, instructions.Span)];
        var written = Splice.Write(bytes, plan, used, instructions.Span, destination);
        Assert.That(written, Is.EqualTo(destination.Length), "Length and Write agree");
        var text = Encoding.UTF8.GetString(destination);
        Assert.DoesNotThrow(() => JsonDocument.Parse(text), text);
        return text;
    }

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    [Test]
    public void Inject_OpenAIChat_SystemMessageAfterLeadingSystemBeforeHistory()
    {
        var body = Json(Spliced(new OpenAIChatDialect(),
            """{"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":"q2"}]}""",
            """{"role":"user","content":"q1"},{"role":"assistant","content":"a1"}"""));
        var messages = body.GetProperty("messages").EnumerateArray().Select(m => (m.GetProperty("role").GetString(), m.GetProperty("content").GetString())).ToArray();
        Assert.That(messages, Is.EqualTo(new (string?, string?)[] { ("system", "S"), ("system", Text), ("user", "q1"), ("assistant", "a1"), ("user", "q2") }));
    }

    [Test]
    public void Inject_OpenAIResponses_DeveloperItemFirst_AlsoForAStringInput()
    {
        var body = Json(Spliced(new OpenAIResponsesDialect(), """{"model":"m","input":"q2"}"""));
        var items = body.GetProperty("input");
        Assert.That(items[0].GetProperty("type").GetString(), Is.EqualTo("message"));
        Assert.That(items[0].GetProperty("role").GetString(), Is.EqualTo("developer"));
        Assert.That(items[0].GetProperty("content").GetString(), Is.EqualTo(Text));
        Assert.That(items[1].GetProperty("content").GetString(), Is.EqualTo("q2"));
    }

    [Test]
    public void Inject_Ollama_SystemMessageFirst()
    {
        var body = Json(Spliced(new OllamaChatDialect(), """{"model":"m","messages":[{"role":"user","content":"q2"}]}"""));
        Assert.That(body.GetProperty("messages")[0].GetProperty("role").GetString(), Is.EqualTo("system"));
        Assert.That(body.GetProperty("messages")[0].GetProperty("content").GetString(), Is.EqualTo(Text));
        Assert.That(body.GetProperty("messages")[1].GetProperty("content").GetString(), Is.EqualTo("q2"));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Inject_AnthropicWithoutSystem_AddsSystem_HistoryStaysInMessages(bool history)
    {
        var text = Spliced(new AnthropicMessagesDialect(), """{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q2"}]}""", history ? AnthropicTurn : null);
        var body = Json(text);
        Assert.That(body.GetProperty("system").GetString(), Is.EqualTo(Text));
        Assert.That(body.GetProperty("messages").GetArrayLength(), Is.EqualTo(history ? 3 : 1));
        Assert.That(body.GetProperty("messages")[history ? 2 : 0].GetProperty("content").GetString(), Is.EqualTo("q2"));
    }

    [TestCase("""{"system":"Be brief.","messages":[{"role":"user","content":"q2"}],"model":"m"}""")]
    [TestCase("""{"messages":[{"role":"user","content":"q2"}],"system":"Be brief.","model":"m"}""")]
    public void Inject_AnthropicSystemString_AppendsAParagraph_BeforeOrAfterMessages(string request)
    {
        var body = Json(Spliced(new AnthropicMessagesDialect(), request, AnthropicTurn));
        Assert.That(body.GetProperty("system").GetString(), Is.EqualTo("Be brief.\n\n" + Text));
        Assert.That(body.GetProperty("messages")[0].GetProperty("content").GetString(), Is.EqualTo("q1"));
        Assert.That(body.GetProperty("messages")[2].GetProperty("content").GetString(), Is.EqualTo("q2"));
    }

    [Test]
    public void Inject_AnthropicSystemEmptyString_IsTheSummary()
    {
        var body = Json(Spliced(new AnthropicMessagesDialect(), """{"system":"","messages":[{"role":"user","content":"q2"}]}"""));
        Assert.That(body.GetProperty("system").GetString(), Is.EqualTo(Text));
    }

    [Test]
    public void Inject_AnthropicSystemBlocks_AppendsATextBlockAfterTheCachedOnes()
    {
        var body = Json(Spliced(new AnthropicMessagesDialect(),
            """{"messages":[{"role":"user","content":"q2"}],"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}]}""",
            AnthropicTurn));
        var system = body.GetProperty("system");
        Assert.That(system.GetArrayLength(), Is.EqualTo(2));
        Assert.That(system[0].GetProperty("cache_control").GetProperty("type").GetString(), Is.EqualTo("ephemeral"));
        Assert.That(system[1].GetProperty("type").GetString(), Is.EqualTo("text"));
        Assert.That(system[1].GetProperty("text").GetString(), Is.EqualTo(Text));
    }

    [Test]
    public void Inject_AnthropicSystemEmptyBlocksOrNull_HoldsTheSummary()
    {
        var blocks = Json(Spliced(new AnthropicMessagesDialect(), """{"system":[ ],"messages":[{"role":"user","content":"q2"}]}"""));
        Assert.That(blocks.GetProperty("system")[0].GetProperty("text").GetString(), Is.EqualTo(Text));
        var none = Json(Spliced(new AnthropicMessagesDialect(), """{"system":null,"messages":[{"role":"user","content":"q2"}]}"""));
        Assert.That(none.GetProperty("system").GetString(), Is.EqualTo(Text));
    }

    [Test]
    public void Inject_AnthropicSystemOfAnotherType_LeavesTheBodyAsSent()
    {
        const string request = """{"system":42,"messages":[{"role":"user","content":"q2"}]}""";
        Assert.That(Spliced(new AnthropicMessagesDialect(), request), Is.EqualTo(request));
    }
}
