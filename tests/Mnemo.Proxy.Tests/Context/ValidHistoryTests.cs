using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Conversation;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Context;

/// <summary>
/// The context build keeps what it forwards a valid conversation, whatever is stored: stored turns spliced into a request
/// through the real window, conversion, pairing step and splice, and the forwarded body checked as a provider would.
/// </summary>
public sealed class ValidHistoryTests
{
    private static readonly OpenAIChatDialect s_chat = new();
    private static readonly AnthropicMessagesDialect s_anthropic = new();
    private static readonly OpenAIResponsesDialect s_responses = new();
    private static readonly OllamaChatDialect s_ollama = new();

    private const string ChatCall = """{"role":"user","content":"What is the weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}""";
    private const string ChatQuestion = """{"role":"user","content":"Never mind. What is my name?"},{"role":"assistant","content":"You did not say."}""";

    [Test]
    public void Chat_StoredTurnEndsWithACallTheRequestDoesNotAnswer_TheCallIsClosedRightAfterIt()
    {
        var (body, fixes) = Forward(s_chat, """{"model":"m","messages":[{"role":"user","content":"Never mind. What is my name?"}]}""", Stored(s_chat, ChatCall));

        Assert.That(ProviderRules.OpenAIChat(body), Is.Null, body.GetRawText());
        var messages = body.GetProperty("messages");
        Assert.That(messages.GetArrayLength(), Is.EqualTo(4));
        Assert.That(messages[2].GetProperty("role").GetString(), Is.EqualTo("tool"));
        Assert.That(messages[2].GetProperty("tool_call_id").GetString(), Is.EqualTo("call_1"));
        Assert.That(messages[2].GetProperty("content").GetString(), Is.EqualTo(Pairing.ClosingText));
        Assert.That(messages[3].GetProperty("content").GetString(), Is.EqualTo("Never mind. What is my name?"));
        Assert.That(fixes, Is.EqualTo("dangling_call=1"));
    }

    [Test]
    public void Chat_TheRequestAnswersTheCall_NothingIsAdded()
    {
        var (body, fixes) = Forward(s_chat, """{"model":"m","messages":[{"role":"tool","tool_call_id":"call_1","content":"Sunny"}]}""", Stored(s_chat, ChatCall));

        Assert.That(ProviderRules.OpenAIChat(body), Is.Null, body.GetRawText());
        Assert.That(body.GetProperty("messages").GetArrayLength(), Is.EqualTo(3));
        Assert.That(fixes, Is.Empty);
    }

    [Test]
    public void Chat_ParallelCallsTheRequestAnswersInPart_TheOthersAreClosedBeforeItsResults()
    {
        const string parallel = """{"role":"user","content":"Weather in Paris and Rome?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_p","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_r","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]}""";
        var (body, fixes) = Forward(s_chat, """{"model":"m","messages":[{"role":"tool","tool_call_id":"call_r","content":"Rainy"}]}""", Stored(s_chat, parallel));

        Assert.That(ProviderRules.OpenAIChat(body), Is.Null, body.GetRawText());
        var messages = body.GetProperty("messages");
        Assert.That(messages[2].GetProperty("tool_call_id").GetString(), Is.EqualTo("call_p"), "the closing result");
        Assert.That(messages[3].GetProperty("tool_call_id").GetString(), Is.EqualTo("call_r"), "the client's own");
        Assert.That(fixes, Is.EqualTo("dangling_call=1"));
    }

    [Test]
    public void Chat_DanglingCallInTheMiddleOfTheWindow_IsClosedBeforeTheNextTurn_TheSameBytesOnEveryRequest()
    {
        var first = Stored(s_chat, ChatCall);
        var second = Stored(s_chat, ChatQuestion);
        var (now, _) = Forward(s_chat, """{"model":"m","messages":[{"role":"user","content":"And now?"}]}""", first, second);
        var (later, fixes) = Forward(s_chat, """{"model":"m","messages":[{"role":"user","content":"And later?"}]}""", first, second, Stored(s_chat, """{"role":"user","content":"And now?"},{"role":"assistant","content":"Now."}"""));

        Assert.That(ProviderRules.OpenAIChat(now), Is.Null, now.GetRawText());
        Assert.That(ProviderRules.OpenAIChat(later), Is.Null, later.GetRawText());
        var injected = string.Join(",", now.GetProperty("messages").EnumerateArray().Take(5).Select(m => m.GetRawText()));
        Assert.That(later.GetRawText(), Does.Contain(injected), "the mended history is a byte-prefix of the next request's: provider prompt caches keep hitting");
        Assert.That(fixes, Is.EqualTo("dangling_call=1"));
    }

    [Test]
    public void Chat_StoredResultWhoseCallIsNotInTheWindow_IsLeftOut_TheRestOfItsTurnKept()
    {
        // A result stored without its call (an old version stored a client's resent copies): its turn's answer stays.
        var orphan = Stored(s_chat, """{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}""");
        var broken = Stored(s_chat, """{"role":"tool","tool_call_id":"call_gone","content":"Sunny"},{"role":"user","content":"Thanks"},{"role":"assistant","content":"You are welcome."}""");
        var (body, fixes) = Forward(s_chat, """{"model":"m","messages":[{"role":"user","content":"Bye"}]}""", orphan, broken);

        Assert.That(ProviderRules.OpenAIChat(body), Is.Null, body.GetRawText());
        Assert.That(Roles(body), Is.EqualTo(new[] { "user", "assistant", "user", "assistant", "user" }));
        Assert.That(body.GetRawText(), Does.Contain("You are welcome.").And.Not.Contain("call_gone"));
        Assert.That(fixes, Is.EqualTo("orphan_result=1"));
    }

    [Test]
    public void Chat_ACallIdUsedByTwoTurns_TheOlderIsRenamedWithItsResult_TheNewestKeepsItForTheClientsResult()
    {
        // Servers that number calls per answer (call_0, call_0, …) give every turn the same id.
        var older = Stored(s_chat, """{"role":"user","content":"Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}""");
        var result = Stored(s_chat, """{"role":"tool","tool_call_id":"call_0","content":"Sunny"},{"role":"assistant","content":"Sunny in Paris."}""");
        var newer = Stored(s_chat, """{"role":"user","content":"Rome?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}""");
        var (body, fixes) = Forward(s_chat, """{"model":"m","messages":[{"role":"tool","tool_call_id":"call_0","content":"Rainy"}]}""", older, result, newer);

        Assert.That(ProviderRules.OpenAIChat(body), Is.Null, body.GetRawText());
        var messages = body.GetProperty("messages");
        var renamed = messages[1].GetProperty("tool_calls")[0].GetProperty("id").GetString();
        Assert.That(renamed, Does.StartWith("call_0_").And.Not.EqualTo("call_0"));
        Assert.That(messages[2].GetProperty("tool_call_id").GetString(), Is.EqualTo(renamed), "its result follows it");
        Assert.That(messages[5].GetProperty("tool_calls")[0].GetProperty("id").GetString(), Is.EqualTo("call_0"), "the newest keeps the id the client answers");
        Assert.That(body.GetRawText(), Does.Contain("Sunny in Paris."));
        Assert.That(fixes, Is.EqualTo("duplicate_id=1"));
    }

    [Test]
    public void Chat_ElementStoredBeforeShapes_IsCheckedFromItsMessages()
    {
        var (body, fixes) = Forward(s_chat, """{"model":"m","messages":[{"role":"user","content":"Never mind."}]}""", Stored(s_chat, ChatCall, legacy: true));

        Assert.That(ProviderRules.OpenAIChat(body), Is.Null, body.GetRawText());
        Assert.That(fixes, Is.EqualTo("dangling_call=1"));
    }

    [Test]
    public void Anthropic_DanglingToolUse_IsClosedWithAnErrorResult_ThatTheNextUserTurnCombinesWith()
    {
        const string call = """{"role":"user","content":"What is the weather?"},{"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]}""";
        var (body, fixes) = Forward(s_anthropic, """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"Never mind."}]}""", Stored(s_anthropic, call));

        var messages = body.GetProperty("messages");
        Assert.That(Roles(body), Is.EqualTo(new[] { "user", "assistant", "user", "user" }), "consecutive user turns, which the API combines (documented)");
        var result = messages[2].GetProperty("content")[0];
        Assert.That(result.GetProperty("type").GetString(), Is.EqualTo("tool_result"));
        Assert.That(result.GetProperty("tool_use_id").GetString(), Is.EqualTo("toolu_1"));
        Assert.That(result.GetProperty("is_error").GetBoolean(), Is.True);
        Assert.That(fixes, Is.EqualTo("dangling_call=1"));
    }

    [Test]
    public void Responses_DanglingFunctionCall_IsClosedWithAnOutput()
    {
        const string call = """{"role":"user","content":"What is the weather?"},{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{}"}""";
        var (body, fixes) = Forward(s_responses, """{"model":"m","input":[{"role":"user","content":"Never mind."}]}""", Stored(s_responses, call));

        Assert.That(ProviderRules.OpenAIResponses(body), Is.Null, body.GetRawText());
        var closing = body.GetProperty("input")[2];
        Assert.That(closing.GetProperty("type").GetString(), Is.EqualTo("function_call_output"));
        Assert.That(closing.GetProperty("call_id").GetString(), Is.EqualTo("call_1"));
        Assert.That(fixes, Is.EqualTo("dangling_call=1"));
    }

    [Test]
    public void Responses_StoredItemReference_IsLeftOut()
    {
        var stored = Stored(s_responses, """{"role":"user","content":"Hi"},{"type":"item_reference","id":"msg_1"},{"role":"user","content":"And?"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Yes."}]}""");
        var (body, fixes) = Forward(s_responses, """{"model":"m","input":[{"role":"user","content":"Bye"}]}""", stored);

        Assert.That(body.GetRawText(), Does.Not.Contain("item_reference"));
        Assert.That(body.GetRawText(), Does.Contain("Yes."));
        Assert.That(fixes, Is.EqualTo("provider_reference=1"));
    }

    [Test]
    public void Ollama_DanglingCallWithoutId_IsClosedWithAToolMessageNamingTheTool()
    {
        const string call = """{"role":"user","content":"What is the weather?"},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{}}}]}""";
        var (body, fixes) = Forward(s_ollama, """{"model":"m","messages":[{"role":"user","content":"Never mind."}]}""", Stored(s_ollama, call));

        Assert.That(ProviderRules.OllamaChat(body), Is.Null, body.GetRawText());
        var closing = body.GetProperty("messages")[2];
        Assert.That(closing.GetProperty("role").GetString(), Is.EqualTo("tool"));
        Assert.That(closing.GetProperty("tool_name").GetString(), Is.EqualTo("get_weather"));
        Assert.That(fixes, Is.EqualTo("dangling_call=1"));
    }

    [Test]
    public void CrossDialect_AnthropicDanglingToolUseReadByChat_IsClosedInChatsForm()
    {
        const string call = """{"role":"user","content":"What is the weather?"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]}""";
        var (body, fixes) = Forward(s_chat, """{"model":"m","messages":[{"role":"user","content":"Never mind."}]}""", Stored(s_anthropic, call));

        Assert.That(ProviderRules.OpenAIChat(body), Is.Null, body.GetRawText());
        Assert.That(body.GetProperty("messages")[2].GetProperty("tool_call_id").GetString(), Is.EqualTo("toolu_1"));
        Assert.That(fixes, Is.EqualTo("dangling_call=1"));
    }

    [Test]
    public void TurnCodec_ShapeRoundTrips_AndATurnWithoutToolsStoresAnEmptyOne()
    {
        var tools = Stored(s_chat, ChatCall);
        Assert.That(tools.Shape, Is.Not.Null);
        Assert.That(tools.Shape!.Open, Is.EqualTo(new[] { new ToolCallRef("call_1", "get_weather") }));
        Assert.That(tools.Shape.Calls, Is.EqualTo(new[] { "call_1" }));
        Assert.That(tools.Shape.Valid, Is.True);

        var plain = Stored(s_chat, ChatQuestion);
        Assert.That(plain.Shape, Is.SameAs(TurnShape.None));
        Assert.That(Encoding.UTF8.GetString(plain.Payload.Span), Does.Contain("\"t\":{}"));
        Assert.That(Stored(s_chat, ChatQuestion, legacy: true).Shape, Is.Null);
    }

    [Test]
    public void Shape_ResultsAfterOtherContent_OrCallsAnsweredLate_AreNotValid()
    {
        Assert.That(Pairing.Shape(s_chat, """{"role":"user","content":"Hi"},{"role":"tool","tool_call_id":"x","content":"r"}"""u8).Valid, Is.False);
        Assert.That(Pairing.Shape(s_chat, """{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"user","content":"Hi"},{"role":"tool","tool_call_id":"a","content":"r"}"""u8).Valid, Is.False);
        var loop = Pairing.Shape(s_chat, """{"role":"tool","tool_call_id":"x","content":"r"},{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a","content":"r"},{"role":"assistant","content":"done"}"""u8);
        Assert.That(loop.Valid, Is.True);
        Assert.That(loop.Answers, Is.EqualTo(new[] { "x" }));
        Assert.That(loop.Open, Is.Empty);
    }

    private static StoredTurn Stored(Dialect dialect, string elements, bool legacy = false)
    {
        var payload = TurnCodec.Encode(
            TurnCodec.NewId(),
            0,
            dialect.Id,
            10,
            TokenUsage.Unknown,
            elements,
            static (w, s) =>
            {
                foreach (var message in JsonDocument.Parse("[" + s + "]").RootElement.EnumerateArray())
                {
                    w.WriteRawValue(message.GetRawText());
                }
            },
            shape: legacy ? null : (e, _) => Pairing.Shape(dialect, e));
        Assert.That(TurnCodec.TryRead(payload, out var view), Is.True);
        return view;
    }

    /// <summary>The body forwarded for <paramref name="request"/> with the stored turns injected (Inject mode), and the fixes counted.</summary>
    private static (JsonElement Body, string Fixes) Forward(Dialect dialect, string request, params StoredTurn[] turns)
    {
        var metrics = new MnemoMetrics();
        var converter = new Converter(new DialectRegistry(), metrics);
        var bytes = Encoding.UTF8.GetBytes(request);
        var plan = new SplicePlan();
        Assert.That(dialect.ParseRequest(bytes, fullHistory: false, plan), Is.EqualTo(ParseResult.Splice));
        var window = ContextWindow.Choose(turns, [], 20, 0);
        var answers = window.MayEndOpen ? Pairing.LeadingAnswers(dialect, bytes, plan) : [];
        var segments = window.Segments(dialect, converter, out var count, out var shapes);
        var valid = ValidHistory.Apply(dialect, segments, shapes, ref count, answers, metrics);
        var used = valid.AsSpan(0, count);
        var destination = new byte[Splice.Length(bytes.Length, plan, used)];
        Splice.Write(bytes, plan, used, destination);
        window.Return(segments);

        using var stream = new MemoryStream();
        metrics.Registry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        var fixes = Encoding.UTF8.GetString(stream.ToArray()).Split('\n')
            .Where(l => l.StartsWith("mnemo_context_fixes_total{", StringComparison.Ordinal))
            .Select(l => $"{l.Split("reason=\"")[1].Split('"')[0]}={l.Split(' ')[^1]}");
        return (JsonDocument.Parse(destination).RootElement.Clone(), string.Join(",", fixes));
    }

    private static string[] Roles(JsonElement body) => [.. body.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString()!)];
}
