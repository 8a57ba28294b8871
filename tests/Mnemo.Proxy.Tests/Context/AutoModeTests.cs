using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Mnemo.Proxy.Tests.Common;
using OpenAI;
using AI = Microsoft.Extensions.AI;

namespace Mnemo.Proxy.Tests.Context;

/// <summary>
/// <c>Mnemo:Memory:Mode=Auto</c> end to end: a client that resends its whole transcript gets nothing twice and stores
/// each turn once; a client that sends only new messages gets exactly what Inject gives it.
/// </summary>
public sealed class AutoModeTests : FunctionalTest
{
    private static readonly Dictionary<string, string?> s_auto = new() { ["Mnemo:Memory:Mode"] = "Auto" };

    /// <summary>How a raw client of one dialect writes its requests, re-serialising answers in its own way (not as stored).</summary>
    public sealed record RawClient(string Dialect, string Path, string Array, string Fixture, Func<string, string> User, Func<string, string> Assistant, string Extra)
    {
        public override string ToString() => Dialect;

        public string Body(IEnumerable<string> items) => $$"""{"model":"m",{{Extra}}"{{Array}}":[{{string.Join(",", items)}}]}""";

        public string AnswerText(FakeUpstream upstream)
        {
            using var json = JsonDocument.Parse(upstream.Fixture(Fixture, Dialect));
            var root = json.RootElement;
            return Dialect switch
            {
                "OpenAIChat" => root.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!,
                "AnthropicMessages" => root.GetProperty("content")[0].GetProperty("text").GetString()!,
                "OpenAIResponses" => root.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString()!,
                _ => root.GetProperty("message").GetProperty("content").GetString()!,
            };
        }
    }

    private static string Str(string s) => JsonSerializer.Serialize(s);

    public static readonly RawClient[] Clients =
    [
        new("OpenAIChat", "/v1/chat/completions", "messages", "completion.json",
            u => $$"""{"role":"user","content":{{Str(u)}}}""",
            a => $$"""{"content":[{"type":"text","text":{{Str(a)}}}],"role":"assistant"}""", ""),
        new("AnthropicMessages", "/v1/messages", "messages", "message.json",
            u => $$"""{"role":"user","content":[{"type":"text","text":{{Str(u)}}}]}""",
            a => $$"""{"role":"assistant","content":{{Str(a)}}}""", "\"max_tokens\":256,"),
        new("OpenAIResponses", "/v1/responses", "input", "response.json",
            u => $$"""{"role":"user","content":{{Str(u)}}}""",
            a => $$"""{"type":"message","role":"assistant","content":[{"type":"output_text","text":{{Str(a)}}}]}""", ""),
        new("OllamaChat", "/api/chat", "messages", "chat.json",
            u => $$"""{"role":"user","content":{{Str(u)}}}""",
            a => $$"""{"content":{{Str(a)}},"role":"assistant"}""", "\"stream\":false,"),
    ];

    [TestCaseSource(nameof(Clients))]
    public async Task FullHistoryClient_UpstreamGetsEachMessageOnceAndStoreHoldsEachTurnOnce(RawClient client)
    {
        await using var proxy = await StartProxyAsync(s_auto);
        var answer = client.AnswerText(Upstream);
        var transcript = new List<string>();
        for (var i = 1; i <= 3; i++)
        {
            transcript.Add(client.User($"question {i}"));
            var body = client.Body(transcript);
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body, session: "full", path: client.Path));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(body), $"turn {i}: the client already sent the whole history, nothing is added");
            Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo("0"));
            Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo(i == 1 ? "empty" : "hit"));
            await WaitForTurnsAsync("full", i);
            transcript.Add(client.Assistant(answer));
        }

        var stored = await StoredTurnsAsync("full");
        Assert.That(stored, Has.Length.EqualTo(3));
        for (var i = 0; i < 3; i++)
        {
            var messages = stored[i].GetProperty("messages");
            Assert.That(messages.GetArrayLength(), Is.EqualTo(2), $"turn {i + 1} holds its question and its answer, nothing resent");
            Assert.That(messages[0].GetRawText(), Does.Contain($"question {i + 1}"));
        }

        // And the store replays it whole: an Inject request of the same session gets each earlier message once.
        var inject = ProxyHost.Chat(client.Body([client.User("question 4")]), session: "full", path: client.Path);
        inject.Headers.Add("X-Mnemo-Mode", "inject");
        await SendAsync(proxy, inject);
        var text = Upstream.LastRequest.BodyText;
        for (var i = 1; i <= 4; i++)
        {
            Assert.That(Occurrences(text, $"question {i}"), Is.EqualTo(1));
        }
    }

    [TestCaseSource(nameof(Clients))]
    public async Task OnlyNewMessages_AutoForwardsTheSameBytesAsInject(RawClient client)
    {
        await using var proxy = await StartProxyAsync();
        foreach (var mode in new[] { "inject", "auto" })
        {
            for (var i = 1; i <= 3; i++)
            {
                var request = ProxyHost.Chat(client.Body([client.User($"question {i}")]), session: mode, path: client.Path);
                request.Headers.Add("X-Mnemo-Mode", mode);
                var (response, _) = await SendAsync(proxy, request);
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
                Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo($"{i - 1}"));
                await WaitForTurnsAsync(mode, i);
            }
        }

        var requests = Upstream.Requests;
        Assert.That(requests, Has.Count.EqualTo(6));
        for (var i = 0; i < 3; i++)
        {
            Assert.That(requests[3 + i].BodyText, Is.EqualTo(requests[i].BodyText), $"request {i + 1}");
        }

        Assert.That(Occurrences(requests[5].BodyText, "question 1"), Is.EqualTo(1));
        var inject = (await StoredTurnsAsync("inject")).Select(t => t.GetProperty("messages").GetRawText());
        var auto = (await StoredTurnsAsync("auto")).Select(t => t.GetProperty("messages").GetRawText());
        Assert.That(auto, Is.EqualTo(inject));
    }

    [Test]
    public async Task MicrosoftExtensionsAIChatClient_ToolLoopOverFourTurns_EachMessageOnceUpstreamAndInTheStore()
    {
        await using var proxy = await StartProxyAsync(s_auto);
        IChatClient chat = new OpenAI.Chat.ChatClient("gpt-4o-mini", new ApiKeyCredential(ApiKey), new OpenAIClientOptions
        {
            Endpoint = new Uri(proxy.ProxyUrl, "/v1"),
            Transport = new HttpClientPipelineTransport(new HttpClient(new SessionHeaderHandler("meai"))),
            RetryPolicy = new ClientRetryPolicy(0),
        }).AsIChatClient();

        List<AI.ChatMessage> history = [new(AI.ChatRole.System, "You are terse."), new(AI.ChatRole.User, "Weather in Boston?")];
        Upstream.Answer("OpenAIChat", json: "completion-tool-calls.json");
        var first = await chat.GetResponseAsync(history);
        history.AddMessages(first);
        var call = first.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().Single();
        Assert.That(call.CallId, Is.EqualTo("call_abc123"));
        await WaitForTurnsAsync("meai", 1);

        Upstream.Answer("OpenAIChat", json: "completion.json");
        history.Add(new AI.ChatMessage(AI.ChatRole.Tool, [new FunctionResultContent(call.CallId, "Sunny, 22 C")]));
        history.AddMessages(await chat.GetResponseAsync(history));
        await WaitForTurnsAsync("meai", 2);

        history.Add(new AI.ChatMessage(AI.ChatRole.User, "Thanks. And tomorrow?"));
        history.AddMessages(await chat.GetResponseAsync(history));
        await WaitForTurnsAsync("meai", 3);

        history.Add(new AI.ChatMessage(AI.ChatRole.User, "Bye."));
        var last = await chat.GetResponseAsync(history);
        Assert.That(last.Text, Is.EqualTo("Hello! How can I assist you today?"));
        await WaitForTurnsAsync("meai", 4);

        Assert.That(Upstream.Requests, Has.Count.EqualTo(4));
        var sent = Upstream.LastRequest.Messages().Select(m => m.Role).ToArray();
        Assert.That(sent, Is.EqualTo(new[] { "system", "user", "assistant", "tool", "assistant", "user", "assistant", "user" }));
        foreach (var request in Upstream.Requests)
        {
            using var body = JsonDocument.Parse(request.Body);
            Assert.That(ProviderRules.OpenAIChat(body.RootElement), Is.Null);
            Assert.That(Occurrences(request.BodyText, "Weather in Boston?"), Is.EqualTo(1));
            Assert.That(Occurrences(request.BodyText, "\"call_abc123\""), Is.EqualTo(request == Upstream.Requests[0] ? 0 : 2), "the call and its result, once each");
        }

        var stored = (await StoredTurnsAsync("meai")).Select(t => t.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString()).ToArray()).ToArray();
        Assert.That(stored, Is.EqualTo(new[]
        {
            new[] { "user", "assistant" },
            new[] { "tool", "assistant" },
            new[] { "user", "assistant" },
            new[] { "user", "assistant" },
        }));
        var all = string.Concat((await StoredTurnsAsync("meai")).Select(t => t.GetRawText()));
        Assert.That(Occurrences(all, "Weather in Boston?"), Is.EqualTo(1));
        Assert.That(Occurrences(all, "Sunny, 22 C"), Is.EqualTo(1));
    }

    [Test]
    public async Task ClientSendsOnlyTheNewestTurns_OnlyTheOlderMissingTurnsAreInjected()
    {
        await using var proxy = await StartProxyAsync(s_auto);
        var client = Clients[0];
        var answer = client.AnswerText(Upstream);
        for (var i = 1; i <= 3; i++)
        {
            await SendAsync(proxy, ProxyHost.Chat(client.Body([client.User($"question {i}")]), session: "tail"));
            await WaitForTurnsAsync("tail", i);
        }

        // The client keeps its own window of one turn and resends it with the new question.
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(client.Body([client.User("question 3"), client.Assistant(answer), client.User("question 4")]), session: "tail"));
        Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo("2"));
        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content.Contains("question") ? m.Content : m.Role), Is.EqualTo(new[]
        {
            "question 1", "assistant", "question 2", "assistant", "question 3", "assistant", "question 4",
        }));
        await WaitForTurnsAsync("tail", 4);
        var newest = (await StoredTurnsAsync("tail"))[3].GetProperty("messages");
        Assert.That(newest.GetArrayLength(), Is.EqualTo(2));
        Assert.That(newest[0].GetRawText(), Does.Contain("question 4"));
    }

    [Test]
    public async Task EditedHistory_ClientTranscriptWinsNothingInjectedOnlyTheNewTurnStored()
    {
        await using var proxy = await StartProxyAsync(s_auto);
        var client = Clients[0];
        var answer = client.AnswerText(Upstream);
        await SendAsync(proxy, ProxyHost.Chat(client.Body([client.User("question 1")]), session: "edited"));
        await WaitForTurnsAsync("edited", 1);

        var body = client.Body([client.User("question 1, edited"), client.Assistant(answer), client.User("question 2")]);
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body, session: "edited"));
        Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo("0"));
        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(body));
        await WaitForTurnsAsync("edited", 2);
        var stored = (await StoredTurnsAsync("edited"))[1].GetProperty("messages");
        Assert.That(stored.GetArrayLength(), Is.EqualTo(2));
        Assert.That(stored[0].GetRawText(), Does.Contain("question 2"));
    }

    [Test]
    public async Task ToolCallIdsRegeneratedByTheClient_StillMatchAsOneConsistentRenaming()
    {
        await using var proxy = await StartProxyAsync(s_auto);
        Upstream.Answer("OpenAIChat", json: "completion-tool-calls.json");
        await SendAsync(proxy, ProxyHost.Chat("""{"model":"m","messages":[{"role":"user","content":"Weather?"}]}""", session: "ids"));
        await WaitForTurnsAsync("ids", 1);

        // Same call, arguments re-encoded, id re-generated in call and result alike.
        Upstream.Answer("OpenAIChat", json: "completion.json");
        var body = """
            {"model":"m","messages":[{"role":"user","content":"Weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_local_1","type":"function","function":{"name":"get_current_weather","arguments":"{\"location\":\"Boston, MA\"}"}}]},
            {"role":"tool","tool_call_id":"call_local_1","content":"Sunny"}]}
            """;
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body, session: "ids"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(body), "nothing injected: the call is already there");
        await WaitForTurnsAsync("ids", 2);
        var stored = (await StoredTurnsAsync("ids"))[1].GetProperty("messages");
        Assert.That(stored[0].GetProperty("role").GetString(), Is.EqualTo("tool"));

    }

    [Test]
    public async Task TurnStoredByAnotherDialect_MatchesAFullHistoryClientSemantically()
    {
        await using var proxy = await StartProxyAsync(s_auto);
        var anthropic = Clients[1];
        await SendAsync(proxy, ProxyHost.Chat(anthropic.Body([anthropic.User("question 1")]), session: "cross", path: anthropic.Path));
        await WaitForTurnsAsync("cross", 1);

        var chat = Clients[0];
        var body = chat.Body([chat.User("question 1"), chat.Assistant(anthropic.AnswerText(Upstream)), chat.User("question 2")]);
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body, session: "cross"));
        Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo("0"));
        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(body));
        await WaitForTurnsAsync("cross", 2);
    }

    [Test]
    public async Task AnthropicPrefillAtTheEnd_IsANewTurnNotHistory()
    {
        await using var proxy = await StartProxyAsync(s_auto);
        var client = Clients[1];
        await SendAsync(proxy, ProxyHost.Chat(client.Body([client.User("question 1")]), session: "prefill", path: client.Path));
        await WaitForTurnsAsync("prefill", 1);

        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(client.Body([client.User("question 2"), client.Assistant("{")]), session: "prefill", path: client.Path));
        Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo("1"));
        Assert.That(Occurrences(Upstream.LastRequest.BodyText, "question 1"), Is.EqualTo(1));
    }

    [Test]
    public async Task ModeHeaderAuto_IsAcceptedAndAnUnknownModeNamesIt()
    {
        await using var proxy = await StartProxyAsync();
        var request = ProxyHost.Chat("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", session: "hdr");
        request.Headers.Add("X-Mnemo-Mode", "AUTO");
        var (ok, _) = await SendAsync(proxy, request);
        Assert.That(ok.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var bad = ProxyHost.Chat("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", session: "hdr");
        bad.Headers.Add("X-Mnemo-Mode", "sometimes");
        var (rejected, body) = await SendAsync(proxy, bad);
        Assert.That(rejected.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(Encoding.UTF8.GetString(body), Does.Contain("inject, auto, record, off"));
    }

    private static int Occurrences(string text, string value)
    {
        var count = 0;
        for (var at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    private sealed class SessionHeaderHandler(string sessionId) : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Remove("X-Session-Id");
            request.Headers.TryAddWithoutValidation("X-Session-Id", sessionId);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
