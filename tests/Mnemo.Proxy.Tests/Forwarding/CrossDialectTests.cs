using System.Net;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>
/// One session continued through all four APIs in turn: each stored turn keeps its own format, and a request of
/// another API receives it converted, valid for that API, tool call and result still paired.
/// </summary>
public sealed class CrossDialectTests : FunctionalTest
{
    private const string Question = "What's the weather like in Boston today?";
    private const string ToolOutput = "Sunny, 22 degrees Celsius";
    private const string AnthropicAnswer = "Hello!";
    private const string StoryRequest = "Tell me a three sentence bedtime story about a unicorn.";
    private const string ResponsesAnswer = "In a peaceful grove beneath a silver moon, a unicorn named Lumina";
    private const string SkyQuestion = "Why is the sky blue?";
    private const string OllamaAnswer = "The sky is blue due to Rayleigh scattering.";
    private const string LastQuestion = "Summarise our conversation.";

    [Test]
    public async Task OneSession_ThroughAllFourApis_EachRequestIsValidForItsApiAndCarriesEveryEarlierTurn()
    {
        await using var proxy = await StartProxyAsync();
        Upstream.JsonFixture = "completion-tool-calls.json";
        const string Session = "across";

        // 1. OpenAI Chat: the model calls a tool.
        await SendOkAsync(proxy, ProxyHost.Chat(
            """{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What's the weather like in Boston today?"}]}""",
            Session));
        await WaitForTurnsAsync(Session, 1);

        // 2. Anthropic Messages, streamed: the client sends only the tool result, for the call OpenAI made.
        await SendOkAsync(proxy, ProxyHost.Chat(
            """{"model":"claude-sonnet-4-5","max_tokens":256,"stream":true,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_abc123","content":"Sunny, 22 degrees Celsius"}]}]}""",
            Session, path: "/v1/messages"));
        var anthropic = Body(Upstream.LastRequest);
        Assert.That(ProviderRules.AnthropicMessages(anthropic), Is.Null, anthropic.GetRawText());
        Assert.That(anthropic.GetProperty("system").GetString(), Is.EqualTo("Be brief."));
        var messages = anthropic.GetProperty("messages");
        Assert.That(messages.GetArrayLength(), Is.EqualTo(3));
        Assert.That(Strings(messages[0]), Does.Contain(Question));
        var use = messages[1].GetProperty("content").EnumerateArray().Single(b => b.GetProperty("type").GetString() == "tool_use");
        Assert.That(use.GetProperty("id").GetString(), Is.EqualTo("call_abc123"));
        Assert.That(use.GetProperty("name").GetString(), Is.EqualTo("get_current_weather"));
        Assert.That(use.GetProperty("input").GetProperty("location").GetString(), Is.EqualTo("Boston, MA"));
        await WaitForTurnsAsync(Session, 2);

        // 3. OpenAI Responses, with a plain-string input.
        await SendOkAsync(proxy, ProxyHost.Chat(
            """{"model":"gpt-4.1","instructions":"Be brief.","input":"Tell me a three sentence bedtime story about a unicorn."}""",
            Session, path: "/v1/responses"));
        var responses = Body(Upstream.LastRequest);
        Assert.That(ProviderRules.OpenAIResponses(responses), Is.Null, responses.GetRawText());
        var items = responses.GetProperty("input").EnumerateArray().ToList();
        Assert.That(items.Select(Kind), Is.EqualTo(new[] { "user", "function_call", "function_call_output", "assistant", "user" }));
        Assert.That(items[1].GetProperty("call_id").GetString(), Is.EqualTo("call_abc123"));
        Assert.That(items[2].GetProperty("output").GetString(), Is.EqualTo(ToolOutput));
        Assert.That(Strings(items[3]), Does.Contain(AnthropicAnswer));
        Assert.That(Strings(items[4]), Does.Contain(StoryRequest));
        await WaitForTurnsAsync(Session, 3);

        // 4. Ollama, streamed (its default).
        await SendOkAsync(proxy, ProxyHost.Chat(
            """{"model":"llama3.2","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Why is the sky blue?"}]}""",
            Session, path: "/api/chat"));
        var ollama = Body(Upstream.LastRequest);
        Assert.That(ProviderRules.OllamaChat(ollama), Is.Null, ollama.GetRawText());
        Assert.That(ollama.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString()),
            Is.EqualTo(new[] { "system", "user", "assistant", "tool", "assistant", "user", "assistant", "user" }));
        AssertCarries(ollama, Question, ToolOutput, AnthropicAnswer, StoryRequest, ResponsesAnswer, SkyQuestion);
        await WaitForTurnsAsync(Session, 4);

        // 5. Back to OpenAI Chat: its own turn spliced as stored, the three others converted.
        Upstream.JsonFixture = "completion.json";
        await SendOkAsync(proxy, ProxyHost.Chat(
            """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Summarise our conversation."}]}""", Session));
        var chat = Body(Upstream.LastRequest);
        Assert.That(ProviderRules.OpenAIChat(chat), Is.Null, chat.GetRawText());
        Assert.That(chat.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString()),
            Is.EqualTo(new[] { "user", "assistant", "tool", "assistant", "user", "assistant", "user", "assistant", "user" }));
        AssertCarries(chat, Question, ToolOutput, AnthropicAnswer, StoryRequest, ResponsesAnswer, SkyQuestion, OllamaAnswer, LastQuestion);
        Assert.That(chat.GetProperty("messages")[2].GetProperty("tool_call_id").GetString(), Is.EqualTo("call_abc123"));

        await WaitForTurnsAsync(Session, 5);
        var stored = await StoredTurnsAsync(Session);
        Assert.That(stored.Select(t => t.GetProperty("d").GetString()),
            Is.EqualTo(new[] { "openai-chat", "anthropic-messages", "openai-responses", "ollama-chat", "openai-chat" }),
            "each turn is stored in the format it was made in");
    }

    [Test]
    public async Task TurnOfAnotherApi_WithThinking_IsConvertedWithoutIt_AndTheDropIsCounted()
    {
        await using var proxy = await StartProxyAsync();
        Upstream.Answer("AnthropicMessages", json: "message-thinking.json");
        await SendOkAsync(proxy, ProxyHost.Chat(
            """{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"Are there an infinite number of primes?"}]}""",
            "thinking", path: "/v1/messages"));
        await WaitForTurnsAsync("thinking", 1);

        await SendOkAsync(proxy, ProxyHost.Chat("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"And twin primes?"}]}""", "thinking"));
        var chat = Body(Upstream.LastRequest);
        Assert.That(ProviderRules.OpenAIChat(chat), Is.Null);
        Assert.That(Strings(chat), Does.Contain("Based on my analysis").And.Not.Contain("Let me analyze"));
        Assert.That(chat.GetRawText(), Does.Not.Contain("signature"));

        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("""mnemo_conversion_dropped_total{from="anthropic-messages",to="openai-chat",kind="thinking"} 1"""));
    }

    [Test]
    public async Task ConvertedTurns_AreConvertedOnce_AndServedFromTheCache_WithTheirDropsCountedEveryTime()
    {
        await using var proxy = await StartProxyAsync();
        Upstream.Answer("AnthropicMessages", json: "message-thinking.json");
        await SendOkAsync(proxy, ProxyHost.Chat(
            """{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"Are there an infinite number of primes?"}]}""",
            "cached", path: "/v1/messages"));
        await WaitForTurnsAsync("cached", 1);

        await SendOkAsync(proxy, ProxyHost.Chat("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"And twin primes?"}]}""", "cached"));
        var first = Body(Upstream.LastRequest).GetProperty("messages");
        await WaitForTurnsAsync("cached", 2);
        await SendOkAsync(proxy, ProxyHost.Chat("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"And cousin primes?"}]}""", "cached"));
        var second = Body(Upstream.LastRequest).GetProperty("messages");

        Assert.That(second[0].GetRawText() + second[1].GetRawText(), Is.EqualTo(first[0].GetRawText() + first[1].GetRawText()),
            "the converted turn is the same bytes from the cache");
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("mnemo_conversion_cache_total{result=\"miss\"} 1"));
        Assert.That(metrics, Does.Contain("mnemo_conversion_cache_total{result=\"hit\"} 1"));
        Assert.That(metrics, Does.Contain("""mnemo_conversion_dropped_total{from="anthropic-messages",to="openai-chat",kind="thinking"} 2"""),
            "what the conversion leaves out is counted for each request that leaves it out");
    }

    private static string Kind(JsonElement item) =>
        item.TryGetProperty("role", out var role) ? role.GetString()! : item.GetProperty("type").GetString()!;

    private static string Strings(JsonElement element) => JsonText.Strings(element);

    private static void AssertCarries(JsonElement body, params string[] texts)
    {
        var strings = Strings(body);
        var at = 0;
        foreach (var text in texts)
        {
            var found = strings.IndexOf(text, at, StringComparison.Ordinal);
            Assert.That(found, Is.GreaterThanOrEqualTo(0), $"'{text}' is carried, after the turns before it");
            at = found;
        }
    }

    private static async Task SendOkAsync(ProxyHost proxy, HttpRequestMessage request)
    {
        var (response, body) = await SendAsync(proxy, request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), System.Text.Encoding.UTF8.GetString(body));
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.AnyOf("hit", "empty"));
    }

    private static JsonElement Body(RecordedRequest request) => JsonDocument.Parse(request.Body).RootElement.Clone();
}
