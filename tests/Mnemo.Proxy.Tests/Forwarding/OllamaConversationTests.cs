using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;
using OllamaSharp;
using OllamaSharp.Models.Chat;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>
/// Session memory for Ollama's <c>/api/chat</c> end to end, driven by OllamaSharp: real proxy, real redis-server, fake
/// upstream replaying Ollama's documented NDJSON and JSON payloads.
/// </summary>
/// <remarks>
/// Ollama servers take no API key, so most requests here carry none, and the proxy runs as a keyless backend's
/// should: <c>Mnemo:Tenancy:Mode=None</c> (one tenant, <c>_</c>; its session id alone names a history). In the default
/// ApiKey tenancy such a request is refused rather than pooled with every other keyless caller.
/// </remarks>
public sealed class OllamaConversationTests : FunctionalTest
{
    private const string StreamAnswer = "The sky is blue due to Rayleigh scattering.";
    private const string JsonAnswer = "Hello! How can I help you today?";
    private const string SystemPrompt = "You are a helpful assistant.";

    private static readonly OllamaSharp.Models.Chat.Tool s_weatherTool = new()
    {
        Function = new Function
        {
            Name = "get_weather",
            Description = "Get the weather for a city",
            Parameters = new Parameters
            {
                Properties = new Dictionary<string, Property> { ["city"] = new Property { Type = "string" } },
                Required = ["city"],
            },
        },
    };

    [TestCase(true)]
    [TestCase(false)]
    public async Task OllamaSharp_TwoTurns_SecondRequestCarriesTheFirstTurnAfterTheSystemMessage(bool stream)
    {
        await using var proxy = await StartKeylessProxyAsync();
        var ollama = Client(proxy, "sky");
        var answer = stream ? StreamAnswer : JsonAnswer;

        var (firstText, _) = await ChatAsync(ollama, stream, new Message(ChatRole.System, SystemPrompt), new Message(ChatRole.User, "Why is the sky blue?"));
        Assert.That(firstText, Is.EqualTo(answer), "OllamaSharp reads the fixture's answer through the proxy");
        await WaitForKeylessTurnsAsync("sky", 1);

        var (secondText, _) = await ChatAsync(ollama, stream, new Message(ChatRole.System, SystemPrompt), new Message(ChatRole.User, "Say that again."));
        Assert.That(secondText, Is.EqualTo(answer));

        Assert.That(Upstream.Requests, Has.Count.EqualTo(2));
        Assert.That(Upstream.Requests[1].Path, Is.EqualTo("/api/chat"));
        Assert.That(Upstream.Requests[1].Messages(), Is.EqualTo(new[]
        {
            ("system", SystemPrompt),
            ("user", "Why is the sky blue?"),
            ("assistant", answer),
            ("user", "Say that again."),
        }));
        using var forwarded = JsonDocument.Parse(Upstream.Requests[1].Body);
        Assert.That(forwarded.RootElement.GetProperty("messages")[2].GetRawText(), Is.EqualTo($$"""{"role":"assistant","content":"{{answer}}"}"""),
            "the remembered answer is a plain input message: nothing of the response envelope");
        Assert.That(forwarded.RootElement.GetProperty("stream").GetBoolean(), Is.EqualTo(stream), "the rest of the request is forwarded as sent");

        await WaitForKeylessTurnsAsync("sky", 2);
        var turns = await KeylessTurnsAsync("sky");
        Assert.That(turns.Select(t => t.GetProperty("d").GetString()), Is.EqualTo(new[] { "ollama-chat", "ollama-chat" }));
        var usage = turns[0].GetProperty("usage");
        Assert.That((usage.GetProperty("input").GetInt32(), usage.GetProperty("output").GetInt32()), Is.EqualTo(stream ? (26, 282) : (11, 18)),
            "prompt_eval_count and eval_count of the done object");
    }

    [Test]
    public async Task OllamaSharp_WithAnApiKey_TurnsAreKeptUnderThatKeysTenant()
    {
        await using var proxy = await StartProxyAsync();
        var ollama = Client(proxy, "keyed", apiKey: ApiKey);
        await ChatAsync(ollama, stream: true, new Message(ChatRole.User, "Hi"));

        await WaitForTurnsAsync("keyed", 1);
        Assert.That(await Redis.Db.KeyExistsAsync(KeylessTurnsKey("keyed")), Is.False);
    }

    [Test]
    public async Task OllamaSharp_WithoutAKey_InApiKeyTenancy_IsRefusedNamingTheSetting_AndNothingIsStored()
    {
        await using var proxy = await StartProxyAsync();
        var ollama = Client(proxy, "keyless");

        var error = Assert.ThrowsAsync<HttpRequestException>(() => ChatAsync(ollama, stream: false, new Message(ChatRole.User, "Hi")));
        Assert.That(error!.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));

        var (response, body) = await SendAsync(proxy, new HttpRequestMessage(HttpMethod.Post, "/api/chat")
        {
            Content = new StringContent("""{"model":"llama3.2","messages":[{"role":"user","content":"Hi"}]}""", Encoding.UTF8, "application/json"),
            Headers = { { "X-Session-Id", "keyless" } },
        });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        var message = JsonDocument.Parse(body).RootElement.GetProperty("error").GetString();
        Assert.That(message, Does.Contain("Mnemo:Tenancy:Mode").And.Contain("None"), "Ollama's error shape, naming the setting to change");
        Assert.That(Upstream.Requests, Is.Empty, "refused before the upstream");
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task RequestWithoutStreamField_StreamsByDefault_AndIsRemembered()
    {
        await using var proxy = await StartKeylessProxyAsync();
        var (response, body) = await SendAsync(proxy, Request("""{"model":"llama3.2","messages":[{"role":"user","content":"Why is the sky blue?"}]}""", "default-stream"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/x-ndjson"));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("stream.ndjson", "OllamaChat")), "the stream reaches the client byte for byte");
        await WaitForKeylessTurnsAsync("default-stream", 1);
        var stored = (await KeylessTurnsAsync("default-stream"))[0].GetProperty("messages");
        Assert.That(stored.GetRawText(), Is.EqualTo($$"""[{"role":"user","content":"Why is the sky blue?"},{"role":"assistant","content":"{{StreamAnswer}}"}]"""));
    }

    [Test]
    public async Task InputsWithImages_AreStoredAndReplayedAsSent()
    {
        await using var proxy = await StartKeylessProxyAsync();
        const string user = """{"role":"user","content":"What is in this picture?","images":["iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="]}""";
        await SendAsync(proxy, Request($$"""{"model":"llava","stream":false,"messages":[{{user}}]}""", "image"));
        await WaitForKeylessTurnsAsync("image", 1);

        await SendAsync(proxy, Request("""{"model":"llava","stream":false,"messages":[{"role":"user","content":"And now?"}]}""", "image"));
        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(
            $$"""{"model":"llava","stream":false,"messages":[{{user}},{"role":"assistant","content":"{{JsonAnswer}}"},{"role":"user","content":"And now?"}]}"""));
    }

    [Test]
    public async Task ThinkingTurn_IsRememberedWithItsThinking()
    {
        Upstream.Answer("OllamaChat", stream: "stream-thinking.ndjson");
        await using var proxy = await StartKeylessProxyAsync();
        var ollama = Client(proxy, "think");
        var (text, _) = await ChatAsync(ollama, stream: true, new Message(ChatRole.User, "What is 17 × 23?"));
        Assert.That(text, Is.EqualTo("17 × 23 = 391."));
        await WaitForKeylessTurnsAsync("think", 1);

        await ChatAsync(ollama, stream: true, new Message(ChatRole.User, "And 17 × 24?"));
        using var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body);
        var assistant = forwarded.RootElement.GetProperty("messages")[1];
        Assert.That(assistant.GetProperty("content").GetString(), Is.EqualTo("17 × 23 = 391."));
        Assert.That(assistant.GetProperty("thinking").GetString(), Is.EqualTo("Okay, let's compute 17 × 23. 17 × 20 = 340 and 17 × 3 = 51, so 340 + 51 = 391."));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task OllamaSharp_ToolLoop_ClientSendsOnlyTheResult_AndTheUpstreamGetsCallThenResult(bool stream)
    {
        // Ollama's documented tool answers carry no call ids: results pair with calls by tool name and order.
        Upstream.Answer("OllamaChat", stream: "stream-tool-calls.ndjson", json: "chat-tool-calls.json");
        await using var proxy = await StartKeylessProxyAsync();
        var ollama = Client(proxy, "tools");
        var (_, call) = await ChatAsync(ollama, stream, new Message(ChatRole.User, "What is the weather in Tokyo?"));
        Assert.That(call, Is.Not.Null, "OllamaSharp sees the tool call");
        var name = call!.Function!.Name!;
        Assert.That(name, Is.EqualTo(stream ? "get_weather" : "get_current_weather"));
        await WaitForKeylessTurnsAsync("tools", 1);

        Upstream.Answer("OllamaChat", stream: "stream.ndjson", json: "chat.json");
        var (text, _) = await ChatAsync(ollama, stream, new Message(ChatRole.Tool, "11 degrees celsius") { ToolName = name });
        Assert.That(text, Is.EqualTo(stream ? StreamAnswer : JsonAnswer));

        using var forwarded = JsonDocument.Parse(Upstream.Requests[1].Body);
        var messages = forwarded.RootElement.GetProperty("messages");
        Assert.That(messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()), Is.EqualTo(new[] { "user", "assistant", "tool" }));
        Assert.That(messages[0].GetProperty("content").GetString(), Is.EqualTo("What is the weather in Tokyo?"));
        var calls = messages[1].GetProperty("tool_calls");
        Assert.That(calls.GetArrayLength(), Is.EqualTo(1), "one call, one result: nothing orphaned");
        Assert.That(calls[0].GetProperty("function").GetProperty("name").GetString(), Is.EqualTo(name));
        Assert.That(calls[0].GetProperty("function").GetProperty("arguments").ValueKind, Is.EqualTo(JsonValueKind.Object), "arguments stay an object, as Ollama sent them");
        Assert.That(messages[2].GetProperty("tool_name").GetString(), Is.EqualTo(name));
        Assert.That(messages[2].GetProperty("content").GetString(), Is.EqualTo("11 degrees celsius"));

        await WaitForKeylessTurnsAsync("tools", 2);
    }

    [Test]
    public async Task ToolLoopWithIds_TheRememberedCallKeepsTheIdTheResultRefersTo()
    {
        Upstream.Answer("OllamaChat", stream: "stream-tool-calls-ids.ndjson");
        await using var proxy = await StartKeylessProxyAsync();
        var (_, call) = await ChatAsync(Client(proxy, "tool-ids"), stream: true, new Message(ChatRole.User, "What is the weather in Tokyo?"));
        Assert.That(call!.Id, Is.EqualTo("call_k3x9q2ab"));
        await WaitForKeylessTurnsAsync("tool-ids", 1);

        // OllamaSharp 5.5 sends no tool_call_id; Ollama's own clients and servers from v0.12.10 do.
        Upstream.Answer("OllamaChat", stream: "stream.ndjson");
        await SendAsync(proxy, Request(
            """{"model":"llama3.2","messages":[{"role":"tool","tool_call_id":"call_k3x9q2ab","tool_name":"get_weather","content":"11 degrees celsius"}]}""", "tool-ids"));

        using var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body);
        var messages = forwarded.RootElement.GetProperty("messages");
        Assert.That(messages.GetArrayLength(), Is.EqualTo(3));
        Assert.That(messages[1].GetProperty("tool_calls").GetRawText(), Is.EqualTo(
            """[{"id":"call_k3x9q2ab","function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}}}]"""), "the call as the upstream sent it");
        Assert.That(messages[2].GetProperty("tool_call_id").GetString(), Is.EqualTo("call_k3x9q2ab"));
    }

    [TestCase("bad id!")]
    [TestCase("{tag}")]
    [TestCase("")]
    public async Task InvalidSessionId_Gets400InOllamasErrorShape_AndNoKeyIsCreated(string session)
    {
        await using var proxy = await StartKeylessProxyAsync();
        var request = Request("""{"model":"llama3.2","messages":[{"role":"user","content":"Hi"}]}""", null);
        request.Headers.TryAddWithoutValidation("X-Session-Id", session);
        var (response, body) = await SendAsync(proxy, request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
        using var error = JsonDocument.Parse(body);
        Assert.That(error.RootElement.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "error" }), "Ollama's {\"error\":\"…\"}");
        var message = error.RootElement.GetProperty("error").GetString();
        Assert.That(message, Does.Contain("X-Session-Id"));
        if (session.Length > 0)
        {
            Assert.That(message, Does.Not.Contain(session), "the bad value is not echoed");
        }

        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task OllamaSharp_InvalidSessionId_FailsTheCall()
    {
        await using var proxy = await StartKeylessProxyAsync();
        var ollama = Client(proxy, "bad id!");
        Assert.That(async () => await ChatAsync(ollama, stream: true, new Message(ChatRole.User, "Hi")), Throws.Exception);
        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task MalformedBody_Gets400InOllamasErrorShape()
    {
        await using var proxy = await StartKeylessProxyAsync();
        var (response, body) = await SendAsync(proxy, Request("""{"model":"llama3.2","messages":{"role":"user"}}""", "malformed"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        using var error = JsonDocument.Parse(body);
        Assert.That(error.RootElement.GetProperty("error").GetString(), Is.Not.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task EmptyMessages_ModelLoadIsForwardedUntouched_EvenWithHistory()
    {
        await using var proxy = await StartKeylessProxyAsync();
        await SendAsync(proxy, Request("""{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"Hi"}]}""", "load"));
        await WaitForKeylessTurnsAsync("load", 1);

        const string load = """{"model":"llama3.2","messages":[]}""";
        var (response, _) = await SendAsync(proxy, Request(load, "load"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(load));
        await SettledAsync(proxy, requests: 2);
        Assert.That(await Redis.Db.ListLengthAsync(KeylessTurnsKey("load")), Is.EqualTo(1));
    }

    [TestCase(404)]
    [TestCase(500)]
    public async Task UpstreamError_IsPassedThroughVerbatim_AndNothingIsStored(int status)
    {
        Upstream.Failure = (status, "error-404.json");
        await using var proxy = await StartKeylessProxyAsync();
        var (response, body) = await SendAsync(proxy, Request("""{"model":"llama3.2","messages":[{"role":"user","content":"Hi"}]}""", "fails"));

        Assert.That((int)response.StatusCode, Is.EqualTo(status));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("error-404.json", "OllamaChat")));
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
        await AssertTheSessionRemembersOnlyWhatFollowsAsync(proxy, "fails");
    }

    [Test]
    public async Task OllamaSharp_ModelNotFound_ThrowsAsWithoutTheProxy_AndNothingIsStored()
    {
        Upstream.Failure = (404, "error-404.json");
        await using var proxy = await StartKeylessProxyAsync();
        var ollama = Client(proxy, "missing-model");
        Assert.That(async () => await ChatAsync(ollama, stream: true, new Message(ChatRole.User, "Hi")), Throws.InstanceOf<HttpRequestException>());
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
        await AssertTheSessionRemembersOnlyWhatFollowsAsync(proxy, "missing-model");
    }

    [Test]
    public async Task UpstreamStreamCutBeforeTheDoneObject_StoresNothing()
    {
        Upstream.AbortAfterEvents = 2;
        Upstream.EventDelay = TimeSpan.FromMilliseconds(100);
        await using var proxy = await StartKeylessProxyAsync();
        var response = await proxy.Client.SendAsync(Request("""{"model":"llama3.2","messages":[{"role":"user","content":"Hi"}]}""", "cut"), HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(async () => await response.Content.ReadAsByteArrayAsync(), Throws.InstanceOf<HttpRequestException>().Or.InstanceOf<IOException>(),
            "the client sees the stream fail, as it would without the proxy");
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
        await AssertTheSessionRemembersOnlyWhatFollowsAsync(proxy, "cut");
    }

    [Test]
    public async Task MidStreamErrorLine_ReachesTheClient_AndNothingIsStored()
    {
        Upstream.Answer("OllamaChat", stream: "stream-error.ndjson");
        await using var proxy = await StartKeylessProxyAsync();
        var (response, body) = await SendAsync(proxy, Request("""{"model":"gemma4","messages":[{"role":"user","content":"Hi"}]}""", "midstream"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("stream-error.ndjson", "OllamaChat")));

        // OllamaSharp reads past the error line without throwing: only the proxy's record tells it was a failed answer.
        var (text, _) = await ChatAsync(Client(proxy, "midstream"), stream: true, new Message(ChatRole.User, "Hi"));
        Assert.That(text, Is.EqualTo(" Yes.Ican"));
        await SettledAsync(proxy, requests: 2);
        Assert.That(await KeyCountAsync(), Is.Zero);
        Assert.That(proxy.Logs.All, Does.Not.Contain("an error was encountered"), "upstream text is never logged");
        await AssertTheSessionRemembersOnlyWhatFollowsAsync(proxy, "midstream");
    }

    [Test]
    public async Task EachMemoryRequest_ReadsOnceWhenNotCached_NeverWhenCached_AndWritesOnce()
    {
        await using var relay = RedisRelay.StartCounting(Redis);
        await using var proxy = await StartKeylessProxyAsync(RedisRelay.PatientReads, relay.ConnectionString);
        await CacheServingAsync(proxy);
        var ollama = Client(proxy, "trips");

        for (var turn = 1; turn <= 4; turn++)
        {
            relay.Reset();
            var forwardedBefore = Upstream.Requests.Count;
            await ChatAsync(ollama, stream: turn % 2 == 0, new Message(ChatRole.User, $"question {turn}"));
            Assert.That(Upstream.Requests, Has.Count.EqualTo(forwardedBefore + 1));
            await WaitForKeylessTurnsAsync("trips", turn);
            await Task.Delay(100);

            Assert.That(relay.DataRoundTrips.Select(t => t.ToString()), Is.EqualTo(RoundTripShapes.OfTurn(turn)),
                $"turn {turn}: one batch to read when the session is not cached (the first request), none after; one script call to write, nothing else");
        }

        Assert.That(Upstream.LastRequest.Messages().Count, Is.EqualTo(7), "three remembered turns and the new question");
    }

    [Test]
    public async Task SessionStartedInOpenAIChat_ContinuesInOllama_WithItsTurnConverted()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!"), session: "cross"));
        await WaitForTurnsAsync("cross", 1);

        var ollama = Client(proxy, "cross", apiKey: ApiKey);
        await ChatAsync(ollama, stream: false, new Message(ChatRole.User, "What did I say?"));

        using var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body);
        Assert.That(forwarded.RootElement.GetProperty("messages").GetRawText(), Is.EqualTo(
            """[{"role":"user","content":"Hello!"},{"role":"assistant","content":"Hello! How can I assist you today?"},{"role":"user","content":"What did I say?"}]"""),
            "Ollama's shape: string content, no content-part arrays");
    }

    [Test]
    public async Task OllamaToolTurn_ContinuesInOpenAIChat_WithCallAndResultPaired()
    {
        Upstream.Answer("OllamaChat", stream: "stream-tool-calls.ndjson");
        await using var proxy = await StartProxyAsync();
        var ollama = Client(proxy, "cross-tools", apiKey: ApiKey);
        await ChatAsync(ollama, stream: true, new Message(ChatRole.User, "What is the weather in Tokyo?"));
        await WaitForTurnsAsync("cross-tools", 1);
        Upstream.Answer("OllamaChat", stream: "stream.ndjson");
        await ChatAsync(ollama, stream: true, new Message(ChatRole.Tool, "11 degrees celsius") { ToolName = "get_weather" });
        await WaitForTurnsAsync("cross-tools", 2);

        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Thanks!"), session: "cross-tools"));
        using var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body);
        var messages = forwarded.RootElement.GetProperty("messages");
        Assert.That(messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()),
            Is.EqualTo(new[] { "developer", "user", "assistant", "tool", "assistant", "user" }));
        var call = messages[2].GetProperty("tool_calls")[0];
        Assert.That(call.GetProperty("function").GetProperty("arguments").GetString(), Is.EqualTo("""{"city":"Tokyo"}"""), "OpenAI's arguments are a string");
        Assert.That(messages[3].GetProperty("tool_call_id").GetString(), Is.EqualTo(call.GetProperty("id").GetString()).And.Not.Empty,
            "the id-less Ollama call and result get one id");
        Assert.That(messages[4].GetProperty("content").GetString(), Is.EqualTo(StreamAnswer));
    }

    /// <summary>
    /// After a failed exchange, a good one in the same session is remembered alone and was sent without history: the
    /// failure stored nothing, and the session works (so "nothing stored" is not just memory being off).
    /// </summary>
    private async Task AssertTheSessionRemembersOnlyWhatFollowsAsync(ProxyHost proxy, string session)
    {
        Upstream.Reset();
        var (response, _) = await SendAsync(proxy, Request("""{"model":"llama3.2","messages":[{"role":"user","content":"Again?"}]}""", session));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Upstream.LastRequest.Messages(), Is.EqualTo(new[] { ("user", "Again?") }), "no history from the failed exchange");
        await WaitForKeylessTurnsAsync(session, 1);
    }

    private Task<ProxyHost> StartKeylessProxyAsync(IDictionary<string, string?>? settings = null, string redis = "") =>
        StartProxyAsync(new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>()) { ["Mnemo:Tenancy:Mode"] = "None" }, redis);

    private static string KeylessTurnsKey(string session) => $"mnemo:v1:{{_:{session}}}:turns";

    private Task<long> WaitForKeylessTurnsAsync(string session, long expected) =>
        Eventually.ValueAsync(() => Redis.Db.ListLengthAsync(KeylessTurnsKey(session)), n => n == expected, $"{expected} stored turns");

    private async Task<JsonElement[]> KeylessTurnsAsync(string session)
    {
        var values = await Redis.Db.ListRangeAsync(KeylessTurnsKey(session));
        return values.Select(v => JsonDocument.Parse((byte[])v!).RootElement.Clone()).ToArray();
    }

    /// <summary>An Ollama chat request as a client without OllamaSharp sends it; no API key, as Ollama needs none.</summary>
    private static HttpRequestMessage Request(string body, string? session)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/chat") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (session is not null)
        {
            request.Headers.Add("X-Session-Id", session);
        }

        return request;
    }

    private static OllamaApiClient Client(ProxyHost proxy, string session, string? apiKey = null)
    {
        var http = new HttpClient(new SessionHeaderHandler(session)) { BaseAddress = proxy.ProxyUrl, Timeout = TimeSpan.FromSeconds(30) };
        if (apiKey is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return new OllamaApiClient(http, "llama3.2");
    }

    /// <summary>One chat call: the answer's text as OllamaSharp assembled it, and the first tool call it saw.</summary>
    private static async Task<(string Text, Message.ToolCall? Call)> ChatAsync(OllamaApiClient ollama, bool stream, params Message[] messages)
    {
        var request = new ChatRequest { Model = "llama3.2", Stream = stream, Messages = messages, Tools = [s_weatherTool] };
        var text = new StringBuilder();
        Message.ToolCall? call = null;
        await foreach (var response in ollama.ChatAsync(request))
        {
            text.Append(response?.Message?.Content);
            call ??= response?.Message?.ToolCalls?.FirstOrDefault();
        }

        return (text.ToString(), call);
    }

    private sealed class SessionHeaderHandler(string session) : DelegatingHandler(new SocketsHttpHandler { UseProxy = false })
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Remove("X-Session-Id");
            request.Headers.TryAddWithoutValidation("X-Session-Id", session);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
