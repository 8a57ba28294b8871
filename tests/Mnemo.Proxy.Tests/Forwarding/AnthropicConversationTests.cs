using System.Net;
using System.Text;
using System.Text.Json;
using Anthropic;
using Anthropic.Core;
using Anthropic.Models.Messages;
using Mnemo.Proxy.Tests.Common;
using AnthropicTool = Anthropic.Models.Messages.Tool;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>
/// Session memory for Anthropic Messages end to end: the official Anthropic SDK (and raw requests where bytes matter)
/// against the real proxy, a real redis-server and a fake upstream replaying Anthropic's documented payloads.
/// </summary>
public sealed class AnthropicConversationTests : FunctionalTest
{
    private const string Dialect = "AnthropicMessages";
    private const string JsonAnswer = "Hi! My name is Claude.";
    private const string StreamAnswer = "Hello!";
    private const string ToolUseId = "toolu_01A09q90qw90lq917835lq9";

    private static readonly AnthropicTool s_weather = new()
    {
        Name = "get_weather",
        Description = "Get the current weather in a given location",
        InputSchema = new InputSchema
        {
            Properties = new Dictionary<string, JsonElement> { ["location"] = JsonSerializer.SerializeToElement(new { type = "string" }) },
            Required = ["location"],
        },
    };

    [TestCase(false)]
    [TestCase(true)]
    public async Task Sdk_TwoTurns_SecondRequestCarriesTheFirstTurnFirstInMessages(bool stream)
    {
        await using var proxy = await StartProxyAsync();
        var client = Sdk(proxy, "anth-conv");

        var first = await AskAsync(client, stream, new UserMessageParam("Hello, Claude"));
        Assert.That(first, Is.EqualTo(stream ? StreamAnswer : JsonAnswer), "the SDK reads the answer through the proxy");
        await WaitForTurnsAsync("anth-conv", 1);

        var second = await AskAsync(client, stream, new UserMessageParam("What did I just say?"));
        Assert.That(second, Is.EqualTo(stream ? StreamAnswer : JsonAnswer));

        var forwarded = Upstream.Requests[1];
        Assert.That(forwarded.Path, Is.EqualTo("/v1/messages"));
        Assert.That(Texts(forwarded), Is.EqualTo(new[]
        {
            ("user", "Hello, Claude"),
            ("assistant", stream ? StreamAnswer : JsonAnswer),
            ("user", "What did I just say?"),
        }));
        using var body = JsonDocument.Parse(forwarded.Body);
        Assert.That(body.RootElement.GetProperty("system").GetString(), Is.EqualTo("You are terse."), "system stays top-level, untouched");
        Assert.That(body.RootElement.GetProperty("messages")[1].GetRawText(), Is.EqualTo(
            $$"""{"role":"assistant","content":[{"type":"text","text":"{{(stream ? StreamAnswer : JsonAnswer)}}"}]}"""),
            "the remembered answer is a valid input message: no citations, ids or stop reasons");

        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("anth-conv"), t => t.Length == 2, "two turns");
        Assert.That(turns.Select(t => t.GetProperty("d").GetString()), Is.EqualTo(new[] { "anthropic-messages", "anthropic-messages" }));
        Assert.That(turns[0].GetProperty("usage").GetProperty("input").GetInt64(), Is.EqualTo(stream ? 25 : 2095));
        Assert.That(turns[0].GetProperty("usage").GetProperty("output").GetInt64(), Is.EqualTo(stream ? 15 : 503));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Sdk_ToolLoop_TheToolResultAloneIsPairedWithTheRememberedCall(bool stream)
    {
        Upstream.Answer(Dialect, stream: "stream-tool-use.sse", json: "message-tool-use.json");
        await using var proxy = await StartProxyAsync();
        var client = Sdk(proxy, "anth-tools");

        var call = await CallToolAsync(client, stream);
        Assert.That(call, Is.EqualTo((ToolUseId, "get_weather")));
        await WaitForTurnsAsync("anth-tools", 1);

        Upstream.Answer(Dialect, stream: "stream.sse", json: "message.json");
        var result = new UserMessageParam(new List<ContentBlockParam> { new ToolResultBlockParam(call.Id) { Content = "15 degrees, sunny" } });
        var answer = await AskAsync(client, stream, result, tools: true);
        Assert.That(answer, Is.EqualTo(stream ? StreamAnswer : JsonAnswer));

        using var forwarded = JsonDocument.Parse(Upstream.Requests[1].Body);
        var messages = forwarded.RootElement.GetProperty("messages");
        Assert.That(messages.GetArrayLength(), Is.EqualTo(3));
        Assert.That(messages[0].GetProperty("role").GetString(), Is.EqualTo("user"));
        Assert.That(Text(messages[0].GetProperty("content")), Is.EqualTo("What is the weather in San Francisco?"));

        var assistant = messages[1];
        Assert.That(assistant.GetProperty("role").GetString(), Is.EqualTo("assistant"));
        var blocks = assistant.GetProperty("content").EnumerateArray().ToArray();
        Assert.That(blocks.Select(b => b.GetProperty("type").GetString()), Is.EqualTo(new[] { "text", "tool_use" }), "the text, then the call");
        var use = blocks[1];
        Assert.That(use.GetProperty("id").GetString(), Is.EqualTo(ToolUseId));
        Assert.That(use.GetProperty("name").GetString(), Is.EqualTo("get_weather"));
        Assert.That(use.GetProperty("input").GetProperty("location").GetString(), Is.EqualTo("San Francisco, CA"));
        Assert.That(use.GetProperty("input").GetProperty("unit").GetString(), Is.EqualTo(stream ? "fahrenheit" : "celsius"));

        var toolResult = messages[2].GetProperty("content")[0];
        Assert.That(messages[2].GetProperty("role").GetString(), Is.EqualTo("user"));
        Assert.That(toolResult.GetProperty("type").GetString(), Is.EqualTo("tool_result"));
        Assert.That(toolResult.GetProperty("tool_use_id").GetString(), Is.EqualTo(ToolUseId), "the result answers the call right before it");

        await WaitForTurnsAsync("anth-tools", 2);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ThinkingTurn_BlockAndSignatureReachTheNextRequestByteForByte(bool stream)
    {
        Upstream.Answer(Dialect, stream: "stream-thinking.sse", json: "message-thinking.json");
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, Messages(Turn("What is 27 * 453?", stream), "think"));
        await WaitForTurnsAsync("think", 1);
        await SendAsync(proxy, Messages(Turn("And 28 * 453?", stream), "think"));

        // Escaped exactly as the upstream sent them: the API checks the signature against the thinking text.
        var block = stream
            ? """{"type":"thinking","thinking":"Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3\n3. 27 * 400 = 10,800\n4. 27 * 50 = 1,350\n5. 27 * 3 = 81\n6. 10,800 + 1,350 + 81 = 12,231","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."}"""
            : """{"type":"thinking","thinking":"Let me analyze this step by step...","signature":"WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL...."}""";
        using var forwarded = JsonDocument.Parse(Upstream.Requests[1].Body);
        var assistant = forwarded.RootElement.GetProperty("messages")[1];
        Assert.That(assistant.GetProperty("content")[0].GetRawText(), Is.EqualTo(block));
        Assert.That(Upstream.Requests[1].BodyText, Does.Contain(block));
    }

    [Test]
    public async Task CacheControl_IsNotReplayedWithTheHistory_ButStaysOnTheNewRequest()
    {
        await using var proxy = await StartProxyAsync();
        const string body = """
            {"model":"claude-sonnet-4-5","max_tokens":1024,
             "system":[{"type":"text","text":"A long manual.","cache_control":{"type":"ephemeral"}}],
             "messages":[{"role":"user","content":[{"type":"text","text":"QUESTION","cache_control":{"type":"ephemeral"}}]}]}
            """;
        await SendAsync(proxy, Messages(body.Replace("QUESTION", "first", StringComparison.Ordinal), "cached"));
        await WaitForTurnsAsync("cached", 1);
        await SendAsync(proxy, Messages(body.Replace("QUESTION", "second", StringComparison.Ordinal), "cached"));

        var stored = (await StoredTurnsAsync("cached"))[0].GetProperty("messages");
        Assert.That(stored.GetRawText(), Does.Not.Contain("cache_control"));
        Assert.That(stored[0].GetRawText(), Is.EqualTo("""{"role":"user","content":[{"type":"text","text":"first"}]}"""));

        var sent = Upstream.Requests[1].BodyText;
        Assert.That(sent.Split("cache_control").Length - 1, Is.EqualTo(2), "the system's and the new message's breakpoints, none from the history");
        Assert.That(Texts(Upstream.Requests[1]), Is.EqualTo(new[] { ("user", "first"), ("assistant", JsonAnswer), ("user", "second") }));
    }

    [Test]
    public async Task ApiKeyHeader_NamesTheTenant()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, Messages(Turn("Hello", stream: false), "keyed", apiKey: "sk-ant-one"));
        await WaitForTurnsAsync("keyed", 1, apiKey: "sk-ant-one");

        var (other, _) = await SendAsync(proxy, Messages(Turn("Hello", stream: false), "keyed", apiKey: "sk-ant-two"));
        Assert.That(Header(other, "X-Mnemo-Memory"), Is.EqualTo("empty"), "another key is another tenant");
        var (same, _) = await SendAsync(proxy, Messages(Turn("Again", stream: false), "keyed", apiKey: "sk-ant-one"));
        Assert.That(Header(same, "X-Mnemo-Memory"), Is.EqualTo("hit"));
    }

    [Test]
    public async Task TurnStoredByOpenAIChat_ContinuesAsAnthropicMessages()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!"), session: "switch"));
        await WaitForTurnsAsync("switch", 1);

        var (response, _) = await SendAsync(proxy, Messages(Turn("And now?", stream: true), "switch", apiKey: ApiKey));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("hit"));
        Assert.That(Texts(Upstream.LastRequest), Is.EqualTo(new[]
        {
            ("user", "Hello!"),
            ("assistant", "Hello! How can I assist you today?"),
            ("user", "And now?"),
        }), "OpenAI's developer message is not stored; the turn is written as Anthropic messages");
        await WaitForTurnsAsync("switch", 2);
    }

    [TestCase("bad id!")]
    [TestCase("{tag}")]
    public async Task InvalidSessionId_Gets400InAnthropicErrorShape_AndNoKeyIsCreated(string session)
    {
        await using var proxy = await StartProxyAsync();
        var (response, body) = await SendAsync(proxy, Messages(Turn("Hello", stream: true), session));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
        using var error = JsonDocument.Parse(body);
        Assert.That(error.RootElement.GetProperty("type").GetString(), Is.EqualTo("error"));
        var detail = error.RootElement.GetProperty("error");
        Assert.That(detail.GetProperty("type").GetString(), Is.EqualTo("invalid_request_error"));
        Assert.That(detail.GetProperty("message").GetString(), Does.Contain("X-Session-Id").And.Not.Contain(session));
        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task InvalidSessionId_ThroughTheSdk_IsABadRequestError()
    {
        await using var proxy = await StartProxyAsync();
        var client = Sdk(proxy, "bad id!");
        var failure = Assert.CatchAsync(async () => await AskAsync(client, stream: false, new UserMessageParam("Hello")));
        Assert.That(failure!.Message, Does.Contain("X-Session-Id"), "the SDK reads the error from Anthropic's shape");
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [TestCase("{\"model\":\"m\",\"max_tokens\":5}", "no 'messages' array")]
    [TestCase("{\"messages\":[{\"content\":\"no role\"}]}", "needs a string 'role'")]
    [TestCase("not json", "not valid JSON")]
    public async Task MalformedBodyWithSession_Gets400InAnthropicErrorShape(string body, string message)
    {
        await using var proxy = await StartProxyAsync();
        var (response, responseBody) = await SendAsync(proxy, Messages(body, "s"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var error = JsonDocument.Parse(responseBody).RootElement;
        Assert.That(error.GetProperty("type").GetString(), Is.EqualTo("error"));
        Assert.That(error.GetProperty("error").GetProperty("type").GetString(), Is.EqualTo("invalid_request_error"));
        Assert.That(error.GetProperty("error").GetProperty("message").GetString(), Does.Contain(message));
        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task UpstreamError_IsPassedThroughVerbatim_AndNothingIsStored(bool stream)
    {
        Upstream.Failure = (500, "error-500.json");
        await using var proxy = await StartProxyAsync();
        var (response, body) = await SendAsync(proxy, Messages(Turn("Hello", stream), "fails"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("error-500.json", Dialect)));
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("mnemo_requests_total{dialect=\"anthropic-messages\",memory=\"empty\",outcome=\"upstream_error\"} 1"));
    }

    [Test]
    public async Task UpstreamStreamCutBeforeMessageStop_StoresNothing()
    {
        Upstream.AbortAfterEvents = 3;
        Upstream.EventDelay = TimeSpan.FromMilliseconds(100);
        await using var proxy = await StartProxyAsync();
        var response = await proxy.Client.SendAsync(Messages(Turn("Hello", stream: true), "cut"), HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(async () => await response.Content.ReadAsByteArrayAsync(), Throws.InstanceOf<HttpRequestException>().Or.InstanceOf<IOException>(),
            "the client sees the stream fail, as it would without the proxy");
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task MidStreamErrorEvent_ReachesTheClient_AndNothingIsStored()
    {
        Upstream.Answer(Dialect, stream: "stream-error.sse");
        await using var proxy = await StartProxyAsync();
        var (response, body) = await SendAsync(proxy, Messages(Turn("Hello", stream: true), "overloaded"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("stream-error.sse", Dialect)), "the error event is the client's to see");
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task AssistantsThreadMessagesPath_IsNotTakenForAnthropic()
    {
        await using var proxy = await StartProxyAsync();
        const string body = """{"role":"user","content":"Hello"}""";
        var request = Messages(body, "threads");
        request.RequestUri = new Uri("/v1/threads/thread_abc123/messages", UriKind.Relative);
        var (response, _) = await SendAsync(proxy, request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Upstream.LastRequest.Body, Is.EqualTo(Encoding.UTF8.GetBytes(body)), "forwarded untouched");
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task EachMemoryRequest_ReadsOnceWhenNotCached_NeverWhenCached_AndWritesOnce()
    {
        await using var relay = RedisRelay.StartCounting(Redis);
        await using var proxy = await ServingProxyAsync(RedisRelay.PatientReads, redis: relay.ConnectionString);

        for (var turn = 1; turn <= 4; turn++)
        {
            relay.Reset();
            var (response, _) = await SendAsync(proxy, Messages(Turn($"question {turn}", stream: turn % 2 == 0), "anth-trips"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            await WaitForTurnsAsync("anth-trips", turn);
            await Task.Delay(100);

            var trips = relay.DataRoundTrips.Select(t => t.ToString()).ToArray();
            Assert.That(trips, Is.EqualTo(RoundTripShapes.OfTurn(turn)),
                $"turn {turn}: one batch to read when the session is not cached (the first request), none after; one script call to write, nothing else (saw {string.Join(", ", trips)})");
        }

        Assert.That(Texts(Upstream.LastRequest).Count(m => m.Role == "user"), Is.EqualTo(4));
    }

    private static AnthropicClient Sdk(ProxyHost proxy, string session) => new(new ClientOptions
    {
        ApiKey = ApiKey,
        BaseUrl = proxy.ProxyUrl.ToString().TrimEnd('/'),
        HttpClient = new HttpClient(new SessionHeaderHandler(session)),
        MaxRetries = 0,
    });

    private static MessageCreateParams Params(MessageParam message, bool tools) => new()
    {
        Model = "claude-sonnet-4-5",
        MaxTokens = 1024,
        System = "You are terse.",
        Messages = [message],
        Tools = tools ? [s_weather] : null,
    };

    /// <summary>One request through the SDK; the answer's text.</summary>
    private static async Task<string> AskAsync(AnthropicClient client, bool stream, MessageParam message, bool tools = false)
    {
        var parameters = Params(message, tools);
        if (!stream)
        {
            var answer = await client.Messages.Create(parameters);
            return string.Concat(answer.Content.Select(b => b.TryPickText(out var text) ? text.Text : ""));
        }

        var streamed = new StringBuilder();
        await foreach (var update in client.Messages.CreateStreaming(parameters))
        {
            if (update.TryPickContentBlockDelta(out var delta) && delta.Delta.TryPickText(out var text))
            {
                streamed.Append(text.Text);
            }
        }

        return streamed.ToString();
    }

    /// <summary>Asks for the weather through the SDK; the id and name of the tool call it got back.</summary>
    private static async Task<(string Id, string Name)> CallToolAsync(AnthropicClient client, bool stream)
    {
        var parameters = Params(new UserMessageParam("What is the weather in San Francisco?"), tools: true);
        if (!stream)
        {
            var answer = await client.Messages.Create(parameters);
            var use = answer.Content.Select(b => b.TryPickToolUse(out var u) ? u : null).First(u => u is not null)!;
            return (use.ID, use.Name);
        }

        (string, string)? call = null;
        await foreach (var update in client.Messages.CreateStreaming(parameters))
        {
            if (update.TryPickContentBlockStart(out var start) && start.ContentBlock.TryPickToolUse(out var use))
            {
                call = (use.ID, use.Name);
            }
        }

        return call ?? throw new AssertionException("no tool_use block streamed");
    }

    /// <summary>A Messages request as a client would send it, the key in <c>x-api-key</c>.</summary>
    private static HttpRequestMessage Messages(string body, string? session, string apiKey = ApiKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-api-key", apiKey);
        request.Headers.Add("anthropic-version", "2023-06-01");
        if (session is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Session-Id", session);
        }

        return request;
    }

    private static string Turn(string text, bool stream) => JsonSerializer.Serialize(new
    {
        model = "claude-sonnet-4-5",
        max_tokens = 1024,
        system = "You are terse.",
        messages = new[] { new { role = "user", content = text } },
        stream,
    });

    /// <summary>Each message of a forwarded request as its role and its text (a string, or its text blocks joined).</summary>
    private static (string Role, string Text)[] Texts(RecordedRequest request)
    {
        using var document = JsonDocument.Parse(request.Body);
        return document.RootElement.GetProperty("messages").EnumerateArray()
            .Select(m => (m.GetProperty("role").GetString()!, Text(m.GetProperty("content"))))
            .ToArray();
    }

    private static string Text(JsonElement content) =>
        content.ValueKind == JsonValueKind.String
            ? content.GetString()!
            : string.Concat(content.EnumerateArray().Where(b => b.GetProperty("type").GetString() == "text").Select(b => b.GetProperty("text").GetString()));

    /// <summary>Adds the session header to every request the SDK sends.</summary>
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
