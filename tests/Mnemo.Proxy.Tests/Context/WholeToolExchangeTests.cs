using System.Net;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Context;

/// <summary>
/// A window of two turns sliding past a tool loop, in each API: no forwarded request may start its history with a
/// tool result whose call was left out (the provider answers 400, and a failed request stores nothing, so the session
/// would fail on every request until it expires).
/// </summary>
public sealed class WholeToolExchangeTests : FunctionalTest
{
    private const string Session = "tool-window";
    private const string ToolOutput = "Sunny, 22 degrees Celsius";

    [Test]
    public Task OpenAIChat_TwoTurnWindowSlidesPastAToolLoop_NoForwardedRequestHasAnOrphanToolResult() => ConverseAsync(new Api(
        "OpenAIChat", "/v1/chat/completions", "completion-tool-calls.json", "completion.json",
        Question: q => $$"""{"model":"gpt-4o-mini","messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":"{{q}}"}]}""",
        ToolResult: $$"""{"model":"gpt-4o-mini","messages":[{"role":"tool","tool_call_id":"call_abc123","content":"{{ToolOutput}}"}]}""",
        ProviderRules.OpenAIChat));

    [Test]
    public Task AnthropicMessages_TwoTurnWindowSlidesPastAToolLoop_NoForwardedRequestHasAnOrphanToolResult() => ConverseAsync(new Api(
        "AnthropicMessages", "/v1/messages", "message-tool-use.json", "message.json",
        Question: q => $$"""{"model":"claude-sonnet-4-5","max_tokens":256,"system":"Be brief.","messages":[{"role":"user","content":"{{q}}"}]}""",
        ToolResult: $$"""{"model":"claude-sonnet-4-5","max_tokens":256,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A09q90qw90lq917835lq9","content":"{{ToolOutput}}"}]}]}""",
        ProviderRules.AnthropicMessages));

    [Test]
    public Task OpenAIResponses_TwoTurnWindowSlidesPastAToolLoop_NoForwardedRequestHasAnOrphanToolResult() => ConverseAsync(new Api(
        "OpenAIResponses", "/v1/responses", "response-function-call.json", "response.json",
        Question: q => $$"""{"model":"gpt-4.1","instructions":"Be brief.","input":[{"role":"user","content":"{{q}}"}]}""",
        ToolResult: $$"""{"model":"gpt-4.1","instructions":"Be brief.","input":[{"type":"function_call_output","call_id":"call_unLAR8MvFNptuiZK6K6HCy5k","output":"{{ToolOutput}}"}]}""",
        ProviderRules.OpenAIResponses));

    [Test]
    public Task OllamaChat_TwoTurnWindowSlidesPastAToolLoop_NoForwardedRequestHasAnOrphanToolResult() => ConverseAsync(new Api(
        "OllamaChat", "/api/chat", "chat-tool-calls.json", "chat.json",
        Question: q => $$"""{"model":"llama3.2","stream":false,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"{{q}}"}]}""",
        ToolResult: $$"""{"model":"llama3.2","stream":false,"messages":[{"role":"tool","tool_name":"get_current_weather","content":"{{ToolOutput}}"}]}""",
        ProviderRules.OllamaChat));

    /// <summary>
    /// The issue's conversation with MaxContextTurns=2: "question → tool call", "tool result → answer", "question 3 →
    /// answer", "question 4 → answer", then question 5. Question 4's window would be the tool result's turn and
    /// question 3's: the result's turn has to go, its call being out of the window.
    /// </summary>
    private async Task ConverseAsync(Api api)
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Memory:MaxContextTurns"] = "2" });

        Upstream.Answer(api.Folder, json: api.ToolFixture);
        await SendOkAsync(proxy, api, api.Question("What is the weather in Paris?"));
        Upstream.Answer(api.Folder, json: api.AnswerFixture);
        await SendOkAsync(proxy, api, api.ToolResult);
        await SendOkAsync(proxy, api, api.Question("Question three?"));
        await SendOkAsync(proxy, api, api.Question("Question four?"));
        await SendOkAsync(proxy, api, api.Question("Question five?"));

        var forwarded = Upstream.Requests.Select(r => JsonDocument.Parse(r.Body).RootElement.Clone()).ToArray();
        Assert.That(forwarded, Has.Length.EqualTo(5));
        Assert.Multiple(() =>
        {
            for (var i = 0; i < forwarded.Length; i++)
            {
                Assert.That(api.Shape(forwarded[i]), Is.Null, $"request {i + 1}: {forwarded[i].GetRawText()}");
            }

            // Question three's window is the whole exchange: call and result.
            Assert.That(forwarded[2].GetRawText(), Does.Contain("What is the weather in Paris?").And.Contain(ToolOutput));

            // Question four's: only question three's turn (the limit is the operator's: the call's turn is not added back).
            Assert.That(forwarded[3].GetRawText(), Does.Contain("Question three?").And.Not.Contain(ToolOutput));

            // Question five's: the two newest turns, oldest first.
            var five = forwarded[4].GetRawText();
            Assert.That(five, Does.Contain("Question three?").And.Contain("Question four?").And.Not.Contain(ToolOutput));
            Assert.That(five.IndexOf("Question three?", StringComparison.Ordinal), Is.LessThan(five.IndexOf("Question four?", StringComparison.Ordinal)));
            Assert.That(five.IndexOf("Question four?", StringComparison.Ordinal), Is.LessThan(five.IndexOf("Question five?", StringComparison.Ordinal)));
        });

        await WaitForTurnsAsync(Session, 5);
        var flags = (await StoredTurnsAsync(Session)).Select(t => t.TryGetProperty("x", out var x) ? x.GetInt32() : 0);
        Assert.That(flags, Is.EqualTo(new[] { 0, 1, 0, 0, 0 }), "only the tool result's turn is stored as continuing an exchange");
    }

    private static async Task SendOkAsync(ProxyHost proxy, Api api, string body)
    {
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body, Session, path: api.Path));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    private sealed record Api(
        string Folder, string Path, string ToolFixture, string AnswerFixture, Func<string, string> Question, string ToolResult, Func<JsonElement, string?> Shape);
}
