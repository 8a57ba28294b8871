using System.Net;
using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>Session memory end to end: real proxy, real redis-server, fake upstream replaying OpenAI's documented payloads.</summary>
public sealed class ConversationTests : FunctionalTest
{
    private const string Answer = "Hello! How can I assist you today?";

    [TestCase(false)]
    [TestCase(true)]
    public async Task TwoTurns_SecondRequestCarriesFirstTurnAfterSystemMessage(bool stream)
    {
        await using var proxy = await StartProxyAsync();

        var (first, firstBody) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!", stream), session: "conv-1"));
        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(firstBody, Is.EqualTo(Upstream.Fixture(stream ? "stream.sse" : "completion.json")), "the answer reaches the client byte for byte");
        Assert.That(Header(first, "X-Mnemo-Memory"), Is.EqualTo("empty"));
        Assert.That(Header(first, "X-Mnemo-Context-Turns"), Is.EqualTo("0"));
        await WaitForTurnsAsync("conv-1", 1);

        var (second, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("What did I just say?", stream), session: "conv-1"));
        Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Header(second, "X-Mnemo-Memory"), Is.EqualTo("hit"));
        Assert.That(Header(second, "X-Mnemo-Context-Turns"), Is.EqualTo("1"));

        var sent = Upstream.LastRequest.Messages();
        Assert.That(sent, Is.EqualTo(new[]
        {
            ("developer", "You are a helpful assistant."),
            ("user", "Hello!"),
            ("assistant", Answer),
            ("user", "What did I just say?"),
        }));

        // The remembered answer is a valid input message: response-only fields are not replayed.
        using var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body);
        var assistant = forwarded.RootElement.GetProperty("messages")[2].GetRawText();
        Assert.That(assistant, Is.EqualTo($$"""{"role":"assistant","content":"{{Answer}}"}"""));

        await WaitForTurnsAsync("conv-1", 2);
    }

    [Test]
    public async Task ThreeTurns_HistoryIsSplicedOldestFirstAfterAllLeadingSystemMessages()
    {
        await using var proxy = await StartProxyAsync();
        for (var i = 1; i <= 3; i++)
        {
            var body = $$"""
                {"model":"m","messages":[{"role":"system","content":"rule one"},{"role":"developer","content":"rule two"},{"role":"user","content":"question {{i}}"}]}
                """;
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body, session: "order"));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            await WaitForTurnsAsync("order", i);
        }

        var roles = Upstream.LastRequest.Messages().Select(m => $"{m.Role}:{m.Content}").ToArray();
        Assert.That(roles, Is.EqualTo(new[]
        {
            "system:rule one", "developer:rule two",
            "user:question 1", $"assistant:{Answer}",
            "user:question 2", $"assistant:{Answer}",
            "user:question 3",
        }));
    }

    [Test]
    public async Task ToolCallTurn_IsRememberedWithItsToolCallsAndTheToolResultFollows()
    {
        Upstream.StreamFixture = "stream-tool-calls.sse";
        await using var proxy = await StartProxyAsync();
        var (first, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("Weather in Paris?", stream: true), session: "tools"));
        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await WaitForTurnsAsync("tools", 1);

        var toolResult = """
            {"model":"m","stream":true,"messages":[{"role":"tool","tool_call_id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","content":"18C and sunny"}]}
            """;
        Upstream.StreamFixture = "stream.sse";
        await SendAsync(proxy, ProxyHost.Chat(toolResult, session: "tools"));

        using var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body);
        var messages = forwarded.RootElement.GetProperty("messages");
        Assert.That(messages.GetArrayLength(), Is.EqualTo(3));
        Assert.That(messages[0].GetProperty("content").GetString(), Is.EqualTo("Weather in Paris?"));
        Assert.That(messages[1].GetRawText(), Is.EqualTo(
            """{"role":"assistant","content":null,"tool_calls":[{"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris, France\"}"}}]}"""));
        Assert.That(messages[2].GetProperty("role").GetString(), Is.EqualTo("tool"));
    }

    [Test]
    public async Task NonStreamingToolCalls_AreRememberedAsTheUpstreamSentThem()
    {
        Upstream.JsonFixture = "completion-tool-calls.json";
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("What is the weather like in Boston today?"), session: "tools-json"));
        var stored = (await Eventually.ValueAsync(() => StoredTurnsAsync("tools-json"), t => t.Length == 1, "one turn"))[0];

        var answer = stored.GetProperty("messages")[1];
        Assert.That(answer.GetProperty("content").ValueKind, Is.EqualTo(JsonValueKind.Null));
        var call = answer.GetProperty("tool_calls")[0];
        Assert.That(call.GetProperty("id").GetString(), Is.EqualTo("call_abc123"));
        Assert.That(call.GetProperty("function").GetProperty("arguments").GetString(), Is.EqualTo("{\n\"location\": \"Boston, MA\"\n}"));
    }

    [Test]
    public async Task EachCompletedTurn_IsOneListElementWithInputsAnswerAndUsage()
    {
        Upstream.StreamFixture = "stream-usage.sse";
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "shape"));
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello again!"), session: "shape"));
        await WaitForTurnsAsync("shape", 2);

        var turns = await StoredTurnsAsync("shape");
        Assert.That(turns.Select(t => t.GetProperty("messages").GetArrayLength()), Is.EqualTo(new[] { 2, 2 }));
        Assert.That(turns[0].GetProperty("messages")[0].GetProperty("content").GetString(), Is.EqualTo("Hello!"));
        Assert.That(turns[0].GetProperty("messages")[1].GetProperty("content").GetString(), Is.EqualTo(Answer));
        Assert.That(turns[0].GetProperty("usage").GetProperty("output").GetInt32(), Is.EqualTo(10));
        Assert.That(turns[1].GetProperty("usage").GetProperty("input").GetInt32(), Is.EqualTo(19));
        Assert.That(turns.Select(t => t.GetProperty("d").GetString()), Is.EqualTo(new[] { "openai-chat", "openai-chat" }));
        Assert.That(turns.Select(t => t.GetProperty("id").GetString()).Distinct().Count(), Is.EqualTo(2));
        Assert.That((long)await Redis.Db.HashGetAsync(MetaKey("shape"), "n"), Is.EqualTo(2));
    }

    [Test]
    public async Task StoredList_IsTrimmedToMaxStoredTurns_AndExpires()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Mnemo:Memory:MaxStoredTurns"] = "2",
            ["Mnemo:Memory:Ttl"] = "01:00:00",
        });
        for (var i = 1; i <= 3; i++)
        {
            await SendAsync(proxy, ProxyHost.Chat(UserTurn($"question {i}"), session: "trim"));
            await Eventually.ValueAsync(() => Redis.Db.HashGetAsync(MetaKey("trim"), "n"), n => (long)n == i, $"turn {i} written");
        }

        var turns = await StoredTurnsAsync("trim");
        Assert.That(turns.Select(t => t.GetProperty("messages")[0].GetProperty("content").GetString()), Is.EqualTo(new[] { "question 2", "question 3" }));
        foreach (var key in new[] { TurnsKey("trim"), MetaKey("trim") })
        {
            var ttl = await Redis.Db.KeyTimeToLiveAsync(key);
            Assert.That(ttl, Is.Not.Null.And.GreaterThan(TimeSpan.FromMinutes(59)).And.LessThanOrEqualTo(TimeSpan.FromHours(1)), key);
        }
    }

    [Test]
    public async Task WithoutSessionHeader_RequestReachesUpstreamByteIdentical_AndNothingIsStored()
    {
        await using var proxy = await StartProxyAsync();
        // Odd but valid JSON: spacing, escapes and key order a re-serializer would change.
        var body = "{ \"messages\" : [ {\"content\":\"caf\\u00e9 \\/ \\\"x\\\"\", \"role\":\"user\"} ],\n\t\"model\":\"m\" , \"temperature\": 1.50 }";
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Upstream.LastRequest.Body, Is.EqualTo(Encoding.UTF8.GetBytes(body)));
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("off"));
        Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo("0"));
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task WithSessionHeader_BodyOutsideTheMessagesArrayIsForwardedUnchanged()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!"), session: "bytes"));
        await WaitForTurnsAsync("bytes", 1);

        var body = "{ \"model\":\"m\",\n \"messages\" : [ {\"role\":\"system\",\"content\":\"s\"} , {\"content\":\"caf\\u00e9\", \"role\":\"user\"} ], \"temperature\": 1.50 }";
        await SendAsync(proxy, ProxyHost.Chat(body, session: "bytes"));

        // Only the splice point changes: the stored turn's bytes go in right after the system message.
        var turn = "{\"role\":\"user\",\"content\":\"Hello!\"},{\"role\":\"assistant\",\"content\":\"" + Answer + "\"}";
        var expected = body.Replace("\"content\":\"s\"}", "\"content\":\"s\"}," + turn, StringComparison.Ordinal);
        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(expected));
    }

    [Test]
    public async Task UpstreamError_IsPassedThroughVerbatim_AndNothingIsStored()
    {
        Upstream.Failure = (500, "error-500.json");
        await using var proxy = await StartProxyAsync();
        var (response, body) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "fails"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("error-500.json")));
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("empty"));
        await SettledAsync(proxy, requests: 1);
        Assert.That(await Redis.Db.KeyExistsAsync(TurnsKey("fails")), Is.False);
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("mnemo_requests_total{dialect=\"openai-chat\",memory=\"empty\",outcome=\"upstream_error\"} 1"));
    }

    [Test]
    public async Task UpstreamStreamCutBeforeTheEnd_StoresNothing()
    {
        // After the client has the headers and two events: an RST before that may rightly turn into a 502.
        Upstream.AbortAfterEvents = 2;
        Upstream.EventDelay = TimeSpan.FromMilliseconds(100);
        await using var proxy = await StartProxyAsync();
        var response = await proxy.Client.SendAsync(ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "cut"), HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(async () => await response.Content.ReadAsByteArrayAsync(), Throws.InstanceOf<HttpRequestException>().Or.InstanceOf<IOException>(),
            "the client sees the stream fail, as it would without the proxy");
        await SettledAsync(proxy, requests: 1);
        Assert.That(await Redis.Db.KeyExistsAsync(TurnsKey("cut")), Is.False);
    }

    [Test]
    public async Task ClientDisconnectMidStream_StoresNothing_AndIsCountedAsClientAborted()
    {
        Upstream.EventDelay = TimeSpan.FromMilliseconds(200);
        await using var proxy = await StartProxyAsync();
        // A handler that closes the connection on dispose instead of draining the rest of the stream to reuse it.
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = proxy.ProxyUrl };
        using (var response = await client.SendAsync(ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "gone"), HttpCompletionOption.ResponseHeadersRead))
        {
            var stream = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[64];
            Assert.That(await stream.ReadAsync(buffer), Is.GreaterThan(0));
        }

        // The proxy notices at its next write, and is done with the request once it is counted.
        await SettledAsync(proxy, requests: 1);
        Assert.That(await Redis.Db.KeyExistsAsync(TurnsKey("gone")), Is.False);
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("mnemo_requests_total{dialect=\"openai-chat\",memory=\"empty\",outcome=\"client_aborted\"} 1"));
        Assert.That(metrics, Does.Not.Contain("outcome=\"completed\""));
    }

    [TestCase("has space")]
    [TestCase("{tag}")]
    [TestCase("tenant*")]
    [TestCase("")]
    [TestCase("x-129")]
    public async Task InvalidSessionId_Gets400InOpenAIErrorShape_AndNoKeyIsCreated(string session)
    {
        if (session == "x-129")
        {
            session = new string('x', 129);
        }

        await using var proxy = await StartProxyAsync();
        var request = ProxyHost.Chat(UserTurn("Hello!"));
        request.Headers.TryAddWithoutValidation("X-Session-Id", session);
        var (response, body) = await SendAsync(proxy, request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
        using var error = JsonDocument.Parse(body);
        var detail = error.RootElement.GetProperty("error");
        Assert.That(detail.GetProperty("type").GetString(), Is.EqualTo("invalid_request_error"));
        Assert.That(detail.GetProperty("code").GetString(), Is.EqualTo("invalid_session_id"));
        Assert.That(detail.GetProperty("param").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(detail.GetProperty("message").GetString(), Does.Contain("X-Session-Id"));
        if (session.Length > 0)
        {
            Assert.That(detail.GetProperty("message").GetString(), Does.Not.Contain(session), "the bad value is not echoed");
        }

        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task TwoApiKeys_WithTheSameSessionId_SeeSeparateHistories()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("I am Alice"), session: "shared", apiKey: "sk-alice"));
        await WaitForTurnsAsync("shared", 1, apiKey: "sk-alice");

        var (bob, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("Who am I?"), session: "shared", apiKey: "sk-bob"));
        Assert.That(Header(bob, "X-Mnemo-Memory"), Is.EqualTo("empty"));
        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[] { "You are a helpful assistant.", "Who am I?" }));
        await WaitForTurnsAsync("shared", 1, apiKey: "sk-bob");

        var (alice, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("Who am I?"), session: "shared", apiKey: "sk-alice"));
        Assert.That(Header(alice, "X-Mnemo-Memory"), Is.EqualTo("hit"));
        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content),
            Is.EqualTo(new[] { "You are a helpful assistant.", "I am Alice", Answer, "Who am I?" }), "Alice sees her turn and not Bob's");

        var keys = Redis.Server.Keys(pattern: "mnemo:v1:*:turns").Select(k => k.ToString()).OrderBy(k => k).ToArray();
        Assert.That(keys, Is.EqualTo(new[] { TurnsKey("shared", "sk-alice"), TurnsKey("shared", "sk-bob") }.OrderBy(k => k)));
        Assert.That(string.Join(" ", keys), Does.Not.Contain("sk-alice").And.Not.Contain("sk-bob"), "keys hold a hash of the API key, never the key");
    }

    [Test]
    public async Task ClientAskingForGzip_StillHasItsTurnRecorded()
    {
        await using var proxy = await StartProxyAsync();
        var request = ProxyHost.Chat(UserTurn("Hello!"), session: "gzip");
        request.Headers.AcceptEncoding.ParseAdd("gzip, br");
        var (response, body) = await SendAsync(proxy, request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Upstream.LastRequest.Headers["Accept-Encoding"], Is.EqualTo("identity"), "the upstream is asked for bytes the tee can read");
        Assert.That(body, Is.EqualTo(Upstream.Fixture("completion.json")));
        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("gzip"), t => t.Length == 1, "the turn");
        Assert.That(turns[0].GetProperty("messages")[1].GetProperty("content").GetString(), Is.EqualTo(Answer));
    }

    [Test]
    public async Task WithoutSessionHeader_ClientCompressionIsNegotiatedWithTheUpstreamAsUsual()
    {
        await using var proxy = await StartProxyAsync();
        var request = ProxyHost.Chat(UserTurn("Hello!"));
        request.Headers.AcceptEncoding.ParseAdd("gzip");
        var (response, _) = await SendAsync(proxy, request);
        Assert.That(Upstream.LastRequest.Headers["Accept-Encoding"], Is.EqualTo("gzip"));
        Assert.That(response.Content.Headers.ContentEncoding, Is.EqualTo(new[] { "gzip" }));
    }

    [Test]
    public async Task RecordMode_ForwardsTheClientsHistoryUnchanged_AndStoresOnlyTheNewTurn()
    {
        await using var proxy = await StartProxyAsync();
        var body = """
            {"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"old question"},{"role":"assistant","content":"old answer"},{"role":"user","content":"new question"}]}
            """;
        var request = ProxyHost.Chat(body, session: "recorded");
        request.Headers.Add("X-Mnemo-Mode", "record");
        var (response, _) = await SendAsync(proxy, request);

        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(body));
        Assert.That(Upstream.LastRequest.Headers.ContainsKey("X-Mnemo-Mode"), Is.False, "Mnemo's control header is not forwarded");
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("off"));
        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("recorded"), t => t.Length == 1, "the turn");
        var messages = turns[0].GetProperty("messages");
        Assert.That(messages.GetArrayLength(), Is.EqualTo(2));
        Assert.That(messages[0].GetProperty("content").GetString(), Is.EqualTo("new question"));
    }

    [Test]
    public async Task OffMode_NeitherReadsNorStores()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!"), session: "quiet"));
        await WaitForTurnsAsync("quiet", 1);

        var request = ProxyHost.Chat(UserTurn("Again"), session: "quiet");
        request.Headers.Add("X-Mnemo-Mode", "off");
        var (response, _) = await SendAsync(proxy, request);

        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("off"));
        Assert.That(Upstream.LastRequest.Messages().Count, Is.EqualTo(2));
        await SettledAsync(proxy, requests: 2);
        Assert.That(await Redis.Db.ListLengthAsync(TurnsKey("quiet")), Is.EqualTo(1));
    }

    [Test]
    public async Task UnknownMode_Gets400InOpenAIErrorShape()
    {
        await using var proxy = await StartProxyAsync();
        var request = ProxyHost.Chat(UserTurn("Hello!"), session: "s");
        request.Headers.Add("X-Mnemo-Mode", "sometimes");
        var (response, body) = await SendAsync(proxy, request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("invalid_mnemo_mode"));
        Assert.That(Upstream.Requests, Is.Empty);
    }

    [TestCase("not json", "not valid JSON")]
    [TestCase("[1,2]", "JSON object")]
    [TestCase("{\"model\":\"m\"}", "no 'messages' array")]
    [TestCase("{\"messages\":{}}", "must be an array")]
    [TestCase("{\"messages\":[{\"content\":\"no role\"}]}", "needs a string 'role'")]
    [TestCase("{\"messages\":[],\"messages\":[]}", "more than one")]
    public async Task MalformedBodyWithSession_Gets400InOpenAIErrorShape_AndNothingIsForwarded(string body, string message)
    {
        await using var proxy = await StartProxyAsync();
        var (response, responseBody) = await SendAsync(proxy, ProxyHost.Chat(body, session: "s"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        var error = JsonDocument.Parse(responseBody).RootElement.GetProperty("error");
        Assert.That(error.GetProperty("code").GetString(), Is.EqualTo("invalid_request_body"));
        Assert.That(error.GetProperty("message").GetString(), Does.Contain(message));
        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task Logs_NeverContainApiKeysSessionIdsPromptsOrAnswers()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Trace",
            ["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace",
            ["Logging:LogLevel:Yarp"] = "Trace",
        });
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("my secret prompt", stream: true), session: "session-secret-42", apiKey: "sk-very-secret"));
        await WaitForTurnsAsync("session-secret-42", 1, apiKey: "sk-very-secret");
        var bad = ProxyHost.Chat(UserTurn("x"), apiKey: "sk-very-secret");
        bad.Headers.TryAddWithoutValidation("X-Session-Id", "bad session-secret-43");
        await SendAsync(proxy, bad);
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("my secret prompt"), session: "session-secret-42", apiKey: "sk-very-secret"));
        await proxy.StopAsync();

        var logs = proxy.Logs.All;
        Assert.That(proxy.Logs.Lines, Is.Not.Empty, "trace logging captured something");
        Assert.That(logs, Does.Not.Contain("sk-very-secret"));
        Assert.That(logs, Does.Not.Contain("session-secret"));
        Assert.That(logs, Does.Not.Contain("my secret prompt"));
        Assert.That(logs, Does.Not.Contain("How can I assist"));
        Assert.That(logs, Does.Not.Contain(Tenant("sk-very-secret")));
    }
}
