#pragma warning disable OPENAI001 // The SDK's Responses types are [Experimental].
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;
using Mnemo.Proxy.Tests.Dialects;
using OpenAI.Responses;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>
/// The openai-responses dialect end to end: the official OpenAI SDK's <see cref="ResponsesClient"/> (or raw requests where
/// the SDK cannot send the shape) through the real proxy and redis-server, the fake upstream replaying recorded payloads.
/// </summary>
public sealed class OpenAIResponsesConversationTests : FunctionalTest
{
    private const string Dialect = "OpenAIResponses";
    private const string StreamAnswer = "Hello! How can I assist you today?";
    private const string JsonAnswerStart = "In a peaceful grove beneath a silver moon, a unicorn named Lumina";

    private static readonly ResponseTool s_weather = ResponseTool.CreateFunctionTool(
        functionName: "get_weather_at_location",
        functionParameters: BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}"""),
        strictModeEnabled: false,
        functionDescription: "Get the weather for a location");

    [TestCase(false)]
    [TestCase(true)]
    public async Task Sdk_TwoTurns_SecondRequestCarriesTheFirstTurnAsInputItems(bool stream)
    {
        await using var proxy = await StartProxyAsync();
        using var sdk = new Sdk(proxy, "resp-conv");

        var first = await sdk.AskAsync(ResponseItem.CreateUserMessageItem("Hello!"), stream);
        Assert.That(first.Text, stream ? Is.EqualTo(StreamAnswer) : Does.StartWith(JsonAnswerStart), "the SDK reads the answer through the proxy");
        await WaitForTurnsAsync("resp-conv", 1);

        var second = await sdk.AskAsync(ResponseItem.CreateUserMessageItem("What did I just say?"), stream);
        Assert.That(second.Text, stream ? Is.EqualTo(StreamAnswer) : Does.StartWith(JsonAnswerStart));

        Assert.That(Upstream.Requests, Has.Count.EqualTo(2));
        var input = Input(Upstream.Requests[1]);
        OpenAIResponsesDialectTests.AssertValidInput(input);
        var transcript = Transcript(input);
        Assert.That(transcript, Has.Length.EqualTo(3));
        Assert.That(transcript[0], Is.EqualTo("user:Hello!"));
        Assert.That(transcript[1], stream ? Is.EqualTo($"assistant:{StreamAnswer}") : Does.StartWith($"assistant:{JsonAnswerStart}"));
        Assert.That(transcript[2], Is.EqualTo("user:What did I just say?"));
        Assert.That(input[1].GetRawText(), Does.Not.Contain("\"id\"").And.Not.Contain("status").And.Not.Contain("annotations"),
            "the remembered answer is a valid input item: response-only fields are not replayed");
        await WaitForTurnsAsync("resp-conv", 2);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Sdk_ToolLoop_ClientSendsOnlyTheResult_AndTheCallIsReplayedBeforeIt(bool stream)
    {
        Upstream.Answer(Dialect, stream: "stream-function-call.sse", json: "response-function-call.json");
        var (callId, name, arguments) = stream
            ? ("call_0UFGPwrziw5rbinYp7rthrTb", "get_weather_at_location", """{"location":"San Francisco, CA"}""")
            : ("call_unLAR8MvFNptuiZK6K6HCy5k", "get_current_weather", """{"location":"Boston, MA","unit":"celsius"}""");
        await using var proxy = await StartProxyAsync();
        using var sdk = new Sdk(proxy, "resp-tools");

        var first = await sdk.AskAsync(ResponseItem.CreateUserMessageItem("What is the weather?"), stream, s_weather);
        var call = first.Result.OutputItems.OfType<FunctionCallResponseItem>().Single();
        Assert.That((call.CallId, call.FunctionName, call.FunctionArguments.ToString()), Is.EqualTo((callId, name, arguments)));
        await WaitForTurnsAsync("resp-tools", 1);

        Upstream.Answer(Dialect, stream: "stream.sse", json: "response.json");
        var second = await sdk.AskAsync(ResponseItem.CreateFunctionCallOutputItem(call.CallId, "Sunny"), stream, s_weather);
        Assert.That(second.Text, stream ? Is.EqualTo(StreamAnswer) : Does.StartWith(JsonAnswerStart));

        var input = Input(Upstream.Requests[1]);
        OpenAIResponsesDialectTests.AssertValidInput(input);
        Assert.That(Transcript(input), Is.EqualTo(new[]
        {
            "user:What is the weather?",
            $"call:{callId}:{name}:{arguments}",
            $"output:{callId}:Sunny",
        }));
        await WaitForTurnsAsync("resp-tools", 2);
    }

    [Test]
    public async Task StringInput_OnTheSecondTurn_BecomesHistoryThenAUserMessage()
    {
        await using var proxy = await StartProxyAsync();
        var firstBody = """{"model":"gpt-4o-mini","input":"Hello!"}""";
        var (first, _) = await SendAsync(proxy, Request(firstBody, "resp-text"));
        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(firstBody), "with no history the string input goes on as sent");
        await WaitForTurnsAsync("resp-text", 1);

        var secondBody = """{"model":"gpt-4o-mini","instructions":"Be brief.","input":"What did I just say?","stream":true}""";
        var (second, body) = await SendAsync(proxy, Request(secondBody, "resp-text"));
        Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("stream.sse", Dialect)));
        Assert.That(Header(second, "X-Mnemo-Memory"), Is.EqualTo("hit"));

        using var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body);
        Assert.That(forwarded.RootElement.GetProperty("instructions").GetString(), Is.EqualTo("Be brief."), "instructions stay as sent");
        var input = forwarded.RootElement.GetProperty("input");
        OpenAIResponsesDialectTests.AssertValidInput(input);
        var transcript = Transcript(input);
        Assert.That(transcript[0], Is.EqualTo("user:Hello!"));
        Assert.That(transcript[1], Does.StartWith($"assistant:{JsonAnswerStart}"));
        Assert.That(transcript[2], Is.EqualTo("user:What did I just say?"));
        Assert.That(input[2].GetRawText(), Is.EqualTo("""{"role":"user","content":"What did I just say?"}"""));

        await WaitForTurnsAsync("resp-text", 2);
        var stored = await StoredTurnsAsync("resp-text");
        Assert.That(stored[1].GetProperty("messages")[0].GetRawText(), Is.EqualTo("""{"role":"user","content":"What did I just say?"}"""));
    }

    [Test]
    public async Task EachCompletedTurn_IsStoredInInputFormWithItsUsage()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, Request("""{"model":"m","stream":true,"input":[{"role":"developer","content":"d"},{"role":"user","content":"Hello!"}]}""", "resp-shape"));
        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("resp-shape"), t => t.Length == 1, "the turn");

        Assert.That(turns[0].GetProperty("d").GetString(), Is.EqualTo("openai-responses"));
        Assert.That(turns[0].GetProperty("messages").GetRawText(), Is.EqualTo(
            """[{"role":"user","content":"Hello!"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hello! How can I assist you today?"}]}]"""));
        var usage = turns[0].GetProperty("usage");
        Assert.That((usage.GetProperty("input").GetInt32(), usage.GetProperty("output").GetInt32(), usage.GetProperty("cache_read").GetInt32()), Is.EqualTo((11, 10, 0)));
    }

    [Test]
    public async Task ReasoningWithEncryptedContent_IsReplayedInTheNextRequest()
    {
        Upstream.Answer(Dialect, json: "response-reasoning.json");
        await using var proxy = await StartProxyAsync();
        using var sdk = new Sdk(proxy, "resp-reasoning");
        await sdk.AskAsync(ResponseItem.CreateUserMessageItem("How do I roll a burrito?"), stream: false);
        await WaitForTurnsAsync("resp-reasoning", 1);

        await sdk.AskAsync(ResponseItem.CreateUserMessageItem("And fold it?"), stream: false);
        var input = Input(Upstream.Requests[1]);
        OpenAIResponsesDialectTests.AssertValidInput(input);
        Assert.That(Transcript(input).Select(t => t.Split(':')[0]), Is.EqualTo(new[] { "user", "reasoning", "assistant", "user" }));

        using var fixture = JsonDocument.Parse(Upstream.Fixture("response-reasoning.json", Dialect));
        var sent = fixture.RootElement.GetProperty("output")[0];
        var replayed = input[1];
        Assert.That(replayed.GetProperty("id").GetString(), Is.EqualTo(sent.GetProperty("id").GetString()));
        Assert.That(replayed.GetProperty("encrypted_content").GetString(), Is.EqualTo(sent.GetProperty("encrypted_content").GetString()));
        Assert.That(replayed.GetProperty("summary").GetRawText(), Is.EqualTo(sent.GetProperty("summary").GetRawText()));
    }

    [TestCase("""{"model":"m","previous_response_id":"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b","input":[{"role":"user","content":"And then?"}]}""")]
    [TestCase("""{ "model" : "m", "input" : "And then?" , "conversation" : { "id" : "conv_689667905b048191b4740501625afd940c7533ace33a2dab" } }""")]
    public async Task ConversationKeptByTheProvider_IsForwardedByteIdentical_AndItsTurnIsStored(string body)
    {
        await using var proxy = await StartProxyAsync();
        var (response, _) = await SendAsync(proxy, Request(body, "resp-chained"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Upstream.LastRequest.Body, Is.EqualTo(Encoding.UTF8.GetBytes(body)), "nothing injected: the provider holds the conversation");
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("off"));
        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("resp-chained"), t => t.Length == 1, "the chained request's turn");
        var transcript = Transcript(turns[0].GetProperty("messages"));
        Assert.That(transcript, Has.Length.EqualTo(2));
        Assert.That(transcript[0], Is.EqualTo("user:And then?"));
        Assert.That(transcript[1], Does.StartWith($"assistant:{JsonAnswerStart}"));
    }

    [Test]
    public async Task PreviousResponseId_WithHistoryStored_GetsNoneOfIt_AndIsStoredAfterIt()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, Request("""{"model":"m","input":"Hello!"}""", "resp-mixed"));
        await WaitForTurnsAsync("resp-mixed", 1);

        var body = """{"model":"m","input":"And then?","previous_response_id":"resp_1"}""";
        var (response, _) = await SendAsync(proxy, Request(body, "resp-mixed"));
        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(body));
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("off"));
        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("resp-mixed"), t => t.Length == 2, "both turns");
        Assert.That(Transcript(turns[1].GetProperty("messages"))[0], Is.EqualTo("user:And then?"));
    }

    [Test]
    public async Task PreviousResponseId_TheChainedTurnContinuesTheSessionsRunningTokenPosition()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Memory:MaxContextTokens"] = "4000" });
        await SendAsync(proxy, Request("""{"model":"m","input":"Hello!"}""", "resp-position"));
        await WaitForTurnsAsync("resp-position", 1);
        await SendAsync(proxy, Request("""{"model":"m","input":"And then?","previous_response_id":"resp_1"}""", "resp-position"));

        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("resp-position"), t => t.Length == 2, "both turns");
        Assert.That(turns[1].GetProperty("p").GetInt64(), Is.EqualTo(turns[0].GetProperty("p").GetInt64() + turns[0].GetProperty("tok").GetInt64()),
            "where the session's turns before it end: block eviction snaps the window to these positions");
    }

    [Test]
    public async Task InvalidSessionId_Gets400InOpenAIErrorShape_AndNoKeyIsCreated()
    {
        await using var proxy = await StartProxyAsync();
        using var sdk = new Sdk(proxy, "bad id!");
        var error = Assert.ThrowsAsync<ClientResultException>(() => sdk.AskAsync(ResponseItem.CreateUserMessageItem("Hello!"), stream: false));
        Assert.That(error!.Status, Is.EqualTo(400));

        var request = Request("""{"model":"m","input":"Hello!"}""", session: null);
        request.Headers.TryAddWithoutValidation("X-Session-Id", "bad id!");
        var (response, body) = await SendAsync(proxy, request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
        var detail = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.That(detail.GetProperty("type").GetString(), Is.EqualTo("invalid_request_error"));
        Assert.That(detail.GetProperty("code").GetString(), Is.EqualTo("invalid_session_id"));
        Assert.That(detail.GetProperty("message").GetString(), Does.Not.Contain("bad id!"));
        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [TestCase("""{"model":"m"}""", "no 'input'")]
    [TestCase("""{"model":"m","input":7}""", "string or an array")]
    [TestCase("""{"model":"m","input":[1]}""", "must be an object")]
    public async Task MalformedBodyWithSession_Gets400InOpenAIErrorShape_AndNothingIsForwarded(string body, string message)
    {
        await using var proxy = await StartProxyAsync();
        var (response, responseBody) = await SendAsync(proxy, Request(body, "resp-bad"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var error = JsonDocument.Parse(responseBody).RootElement.GetProperty("error");
        Assert.That(error.GetProperty("code").GetString(), Is.EqualTo("invalid_request_body"));
        Assert.That(error.GetProperty("message").GetString(), Does.Contain(message));
        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task UpstreamError_IsPassedThroughVerbatim_AndNothingIsStored(bool stream)
    {
        Upstream.Failure = (500, "error-500.json");
        await using var proxy = await StartProxyAsync();
        var (response, body) = await SendAsync(proxy, Request(Body("Hello!", stream), "resp-500"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("error-500.json", Dialect)));
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("mnemo_requests_total{dialect=\"openai-responses\",memory=\"empty\",outcome=\"upstream_error\"} 1"));
    }

    [Test]
    public async Task UpstreamStreamCutBeforeTheEnd_StoresNothing()
    {
        // After the client has the headers and two events: an RST before that may rightly turn into a 502.
        Upstream.AbortAfterEvents = 2;
        Upstream.EventDelay = TimeSpan.FromMilliseconds(100);
        await using var proxy = await StartProxyAsync();
        var response = await proxy.Client.SendAsync(Request(Body("Hello!", stream: true), "resp-cut"), HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(async () => await response.Content.ReadAsByteArrayAsync(), Throws.InstanceOf<HttpRequestException>().Or.InstanceOf<IOException>());
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [TestCase("stream-failed.sse", "upstream reported the response failed")]
    [TestCase("stream-incomplete.sse", "upstream reported the response incomplete")]
    [TestCase("stream-error.sse", "upstream sent an error event")]
    public async Task StreamEndingInFailure_ReachesTheClientVerbatim_AndStoresNothing(string fixture, string reason)
    {
        Upstream.Answer(Dialect, stream: fixture);
        await using var proxy = await StartProxyAsync();
        var (response, body) = await SendAsync(proxy, Request(Body("Hello!", stream: true), "resp-failed"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(body, Is.EqualTo(Upstream.Fixture(fixture, Dialect)));
        await Eventually.TrueAsync(
            () => Task.FromResult(proxy.Logs.All.Contains($"A openai-responses answer was proxied but not recorded: {reason}.", StringComparison.Ordinal)),
            "the not-recorded warning with the parser's reason");
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
            var (response, _) = await SendAsync(proxy, Request(Body($"question {turn}", stream: turn % 2 == 0), "resp-trips"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            await WaitForTurnsAsync("resp-trips", turn);
            await Task.Delay(100);

            Assert.That(relay.DataRoundTrips.Select(t => t.ToString()), Is.EqualTo(RoundTripShapes.OfTurn(turn)),
                $"turn {turn}: one batch to read when the session is not cached (the first request), none after; one script call to write, nothing else");
        }
    }

    [Test]
    public async Task RecordMode_ForwardsTheClientsItemsUnchanged_AndStoresOnlyWhatFollowsTheLastOutput()
    {
        await using var proxy = await StartProxyAsync();
        var body = """
            {"model":"m","input":[{"role":"system","content":"s"},{"role":"user","content":"Weather?"},{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{}"},{"type":"function_call_output","call_id":"call_1","output":"Sunny"},{"role":"user","content":"Thanks"}]}
            """;
        var request = Request(body, "resp-record");
        request.Headers.Add("X-Mnemo-Mode", "record");
        await SendAsync(proxy, request);

        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(body));
        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("resp-record"), t => t.Length == 1, "the turn");
        var transcript = Transcript(turns[0].GetProperty("messages"));
        Assert.That(transcript, Has.Length.EqualTo(3));
        Assert.That(transcript.Take(2), Is.EqualTo(new[] { "output:call_1:Sunny", "user:Thanks" }));
        Assert.That(transcript[2], Does.StartWith($"assistant:{JsonAnswerStart}"));
    }

    [Test]
    public async Task ChatTurnThenResponses_HistoryIsConvertedIntoValidInputItems()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello from chat!"), session: "resp-mixed-api"));
        await WaitForTurnsAsync("resp-mixed-api", 1);

        using var sdk = new Sdk(proxy, "resp-mixed-api");
        await sdk.AskAsync(ResponseItem.CreateUserMessageItem("And from responses?"), stream: true);

        var input = Input(Upstream.LastRequest);
        OpenAIResponsesDialectTests.AssertValidInput(input);
        Assert.That(Transcript(input), Is.EqualTo(new[] { "user:Hello from chat!", $"assistant:{StreamAnswer}", "user:And from responses?" }));
    }

    [Test]
    public async Task ResponsesTurnThenChat_HistoryIsConvertedIntoChatMessages()
    {
        Upstream.Answer(Dialect, json: "response-function-call.json");
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, Request(Body("Weather in Boston?", stream: false), "resp-to-chat"));
        await WaitForTurnsAsync("resp-to-chat", 1);

        var toolResult = """{"model":"m","messages":[{"role":"tool","tool_call_id":"call_unLAR8MvFNptuiZK6K6HCy5k","content":"Sunny"}]}""";
        await SendAsync(proxy, ProxyHost.Chat(toolResult, session: "resp-to-chat"));

        using var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body);
        var messages = forwarded.RootElement.GetProperty("messages");
        Assert.That(messages.GetArrayLength(), Is.EqualTo(3));
        Assert.That(messages[0].GetProperty("content")[0].GetProperty("text").GetString(), Is.EqualTo("Weather in Boston?"));
        var call = messages[1].GetProperty("tool_calls")[0];
        Assert.That(call.GetProperty("id").GetString(), Is.EqualTo("call_unLAR8MvFNptuiZK6K6HCy5k"));
        Assert.That(call.GetProperty("function").GetProperty("name").GetString(), Is.EqualTo("get_current_weather"));
        Assert.That(messages[2].GetProperty("tool_call_id").GetString(), Is.EqualTo("call_unLAR8MvFNptuiZK6K6HCy5k"));
    }

    private static string Body(string text, bool stream) =>
        JsonSerializer.Serialize(new { model = "gpt-4o-mini", input = new object[] { new { role = "user", content = text } }, stream });

    /// <summary>A Responses request with the headers a client would send.</summary>
    private static HttpRequestMessage Request(string body, string? session) => ProxyHost.Chat(body, session, path: "/v1/responses");

    private static JsonElement Input(RecordedRequest request) => JsonDocument.Parse(request.Body).RootElement.GetProperty("input").Clone();

    /// <summary>Each input item as one line: <c>role:text</c>, <c>call:id:name:arguments</c>, <c>output:id:text</c>, or its type.</summary>
    private static string[] Transcript(JsonElement input) => input.EnumerateArray().Select(item =>
    {
        var type = item.TryGetProperty("type", out var t) ? t.GetString() : "message";
        return type switch
        {
            "message" => $"{item.GetProperty("role").GetString()}:{Text(item.GetProperty("content"))}",
            "function_call" => $"call:{item.GetProperty("call_id").GetString()}:{item.GetProperty("name").GetString()}:{item.GetProperty("arguments").GetString()}",
            "function_call_output" => $"output:{item.GetProperty("call_id").GetString()}:{Text(item.GetProperty("output"))}",
            _ => type!,
        };
    }).ToArray();

    private static string Text(JsonElement content) => content.ValueKind == JsonValueKind.String
        ? content.GetString()!
        : string.Concat(content.EnumerateArray().Select(p => p.TryGetProperty("text", out var text) ? text.GetString() : $"[{p.GetProperty("type").GetString()}]"));

    /// <summary>The official SDK's Responses client, pointed at the proxy, every request carrying the session header.</summary>
    private sealed class Sdk : IDisposable
    {
        private readonly HttpClient _http;
        private readonly ResponsesClient _client;

        public Sdk(ProxyHost proxy, string session)
        {
            _http = new HttpClient(new SessionHeader(session));
            _client = new ResponsesClient(new ApiKeyCredential(ApiKey), new ResponsesClientOptions
            {
                Endpoint = new Uri(proxy.ProxyUrl, "/v1"),
                Transport = new HttpClientPipelineTransport(_http),
                RetryPolicy = new ClientRetryPolicy(0),
            });
        }

        /// <summary>Sends one item; the text is the deltas' when streaming, and the result the completed response.</summary>
        public async Task<(string Text, ResponseResult Result)> AskAsync(ResponseItem item, bool stream, ResponseTool? tool = null)
        {
            var options = new CreateResponseOptions { Model = "gpt-4o-mini", InputItems = { item } };
            if (tool is not null)
            {
                options.Tools.Add(tool);
            }

            if (!stream)
            {
                ResponseResult result = await _client.CreateResponseAsync(options);
                return (result.GetOutputText(), result);
            }

            options.StreamingEnabled = true;
            var text = new StringBuilder();
            ResponseResult? completed = null;
            await foreach (var update in await _client.CreateResponseStreamingAsync(options))
            {
                switch (update)
                {
                    case StreamingResponseOutputTextDeltaUpdate delta:
                        text.Append(delta.Delta);
                        break;
                    case StreamingResponseCompletedUpdate done:
                        completed = done.Response;
                        break;
                }
            }

            Assert.That(completed, Is.Not.Null, "the SDK saw response.completed");
            return (text.ToString(), completed!);
        }

        public void Dispose() => _http.Dispose();
    }

    private sealed class SessionHeader(string session) : DelegatingHandler(new SocketsHttpHandler { UseProxy = false })
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Remove("X-Session-Id");
            request.Headers.TryAddWithoutValidation("X-Session-Id", session);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
