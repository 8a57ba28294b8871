using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;
using OpenAI;
using OpenAI.Chat;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>
/// Acceptance of <c>openai-chat</c> with the official OpenAI .NET SDK pointed at the proxy: what users run, with only the
/// session header added. The client sends its new turn only; the upstream must see the whole conversation.
/// </summary>
public sealed class OpenAIChatSdkTests : FunctionalTest
{
    private const string Answer = "Hello! How can I assist you today?";
    private const string SystemPrompt = "You are a helpful assistant.";
    private const string ToolOutput = "Sunny, 22C";

    private static readonly ChatTool s_weather = ChatTool.CreateFunctionTool(
        functionName: "get_weather",
        functionDescription: "Get the weather for a location",
        functionParameters: BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}"""));

    [TestCase(false)]
    [TestCase(true)]
    public async Task TwoTurns_SecondUpstreamRequestCarriesTheFirstTurnBeforeTheNewMessage(bool stream)
    {
        await using var proxy = await StartProxyAsync();
        using var sdk = Sdk(proxy, "sdk-conv");

        // No wait between the turns: an SDK user sends the next one as soon as the answer is read.
        var first = await sdk.AskAsync([new SystemChatMessage(SystemPrompt), new UserChatMessage("Hello!")], stream);
        var second = await sdk.AskAsync([new SystemChatMessage(SystemPrompt), new UserChatMessage("What did I just say?")], stream);

        Assert.That(first.Text, Is.EqualTo(Answer), "the SDK read the fixture's answer through the proxy");
        Assert.That(second.Text, Is.EqualTo(Answer));
        Assert.That(Upstream.Requests, Has.Count.EqualTo(2), "no SDK retry hid a failure");
        Assert.That(Upstream.Requests.Select(r => r.IsStreaming), Is.All.EqualTo(stream));
        Assert.That(Texts(Upstream.Requests[1]), Is.EqualTo(new[]
        {
            ("system", SystemPrompt),
            ("user", "Hello!"),
            ("assistant", Answer),
            ("user", "What did I just say?"),
        }));
        await WaitForTurnsAsync("sdk-conv", 2);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ToolLoop_ClientSendsOnlyTheToolResult_UpstreamGetsCallAndResultPairedInOrder(bool stream)
    {
        Upstream.Answer("OpenAIChat", stream: "stream-tool-calls.sse", json: "completion-tool-calls.json");
        await using var proxy = await StartProxyAsync();
        using var sdk = Sdk(proxy, "sdk-tools");
        var options = new ChatCompletionOptions { Tools = { s_weather } };

        var call = await sdk.AskAsync([new UserChatMessage("What is the weather like?")], stream, options);
        var (callId, name, arguments) = call.ToolCalls.Single();
        Assert.That(callId, Is.EqualTo(stream ? "call_DdmO9pD3xa9XTPNJ32zg2hcA" : "call_abc123"));
        Assert.That(call.Text, Is.Empty);

        Upstream.Answer("OpenAIChat", stream: "stream.sse", json: "completion.json");
        var afterTool = await sdk.AskAsync([new ToolChatMessage(callId, ToolOutput)], stream, options);
        Assert.That(afterTool.Text, Is.EqualTo(Answer));

        using (var second = JsonDocument.Parse(Upstream.Requests[1].Body))
        {
            var messages = second.RootElement.GetProperty("messages");
            Assert.That(messages.GetArrayLength(), Is.EqualTo(3), messages.GetRawText());
            Assert.That(messages[0].GetProperty("role").GetString(), Is.EqualTo("user"));
            Assert.That(Text(messages[0]), Is.EqualTo("What is the weather like?"));
            Assert.That(messages[1].GetProperty("role").GetString(), Is.EqualTo("assistant"));
            Assert.That(messages[1].GetProperty("content").ValueKind, Is.EqualTo(JsonValueKind.Null), "a call-only answer replays with null content");
            var calls = messages[1].GetProperty("tool_calls");
            Assert.That(calls.GetArrayLength(), Is.EqualTo(1));
            Assert.That(calls[0].GetProperty("id").GetString(), Is.EqualTo(callId));
            Assert.That(calls[0].GetProperty("type").GetString(), Is.EqualTo("function"));
            Assert.That(calls[0].GetProperty("function").GetProperty("name").GetString(), Is.EqualTo(name));
            Assert.That(calls[0].GetProperty("function").GetProperty("arguments").GetString(), Is.EqualTo(arguments), "the arguments the SDK saw, as they were");
            Assert.That(messages[2].GetProperty("role").GetString(), Is.EqualTo("tool"));
            Assert.That(messages[2].GetProperty("tool_call_id").GetString(), Is.EqualTo(callId));
            Assert.That(Text(messages[2]), Is.EqualTo(ToolOutput));
        }

        var third = await sdk.AskAsync([new UserChatMessage("Thanks! And tomorrow?")], stream, options);
        Assert.That(third.Text, Is.EqualTo(Answer));
        Assert.That(Upstream.Requests, Has.Count.EqualTo(3));
        Assert.That(Shape(Upstream.Requests[2]), Is.EqualTo(new[]
        {
            "user:What is the weather like?",
            $"assistant:->{callId}",
            $"tool:{callId}:{ToolOutput}",
            $"assistant:{Answer}",
            "user:Thanks! And tomorrow?",
        }));
        AssertToolsPaired(Upstream.Requests[2]);
        await WaitForTurnsAsync("sdk-tools", 3);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task EachSdkRequest_ReadsOnceWhenNotCached_NeverWhenCached_AndWritesOnce(bool stream)
    {
        await using var relay = RedisRelay.StartCounting(Redis);
        await using var proxy = await ServingProxyAsync(RedisRelay.PatientReads, redis: relay.ConnectionString);
        using var sdk = Sdk(proxy, "sdk-trips");
        var options = new ChatCompletionOptions { Tools = { s_weather } };
        string? callId = null;

        // A text turn, a tool call, the tool result alone, a text turn: every shape of SDK request once.
        for (var turn = 1; turn <= 4; turn++)
        {
            Upstream.Answer("OpenAIChat", stream: turn == 2 ? "stream-tool-calls.sse" : "stream.sse", json: turn == 2 ? "completion-tool-calls.json" : "completion.json");
            relay.Reset();
            var reply = await sdk.AskAsync(turn == 3 ? [new ToolChatMessage(callId!, ToolOutput)] : [new UserChatMessage($"question {turn}")], stream, options);
            callId ??= reply.ToolCalls.FirstOrDefault().Id;
            await WaitForTurnsAsync("sdk-trips", turn);
            await Task.Delay(100);

            Assert.That(relay.DataRoundTrips.Select(t => t.ToString()), Is.EqualTo(RoundTripShapes.OfTurn(turn)),
                $"turn {turn}: one batch to read when the session is not cached (the first request), none after; one script call to write, nothing else; saw {string.Join(" / ", relay.DataRoundTrips)}");
        }

        Assert.That(Upstream.Requests, Has.Count.EqualTo(4));
        AssertToolsPaired(Upstream.Requests[3]);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task InvalidSessionId_SdkRaisesA400WithTheProxysMessage_AndNoKeyIsCreated(bool stream)
    {
        await using var proxy = await StartProxyAsync();
        using var sdk = Sdk(proxy, "bad id!");

        var error = Assert.ThrowsAsync<ClientResultException>(async () => await sdk.AskAsync([new UserChatMessage("Hello!")], stream));

        Assert.That(error!.Status, Is.EqualTo(400));
        Assert.That(error.Message, Does.Contain("X-Session-Id"), "the SDK parsed the OpenAI error shape");
        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task UpstreamError_ReachesTheSdkAsTheUpstreamsError_AndNothingIsStored(bool stream)
    {
        Upstream.Failure = (500, "error-500.json");
        await using var proxy = await StartProxyAsync();
        using var sdk = Sdk(proxy, "sdk-fails");
        using var upstreamError = JsonDocument.Parse(Upstream.Fixture("error-500.json"));
        var upstreamMessage = upstreamError.RootElement.GetProperty("error").GetProperty("message").GetString()!;

        var error = Assert.ThrowsAsync<ClientResultException>(async () => await sdk.AskAsync([new UserChatMessage("Hello!")], stream));

        Assert.That(error!.Status, Is.EqualTo(500));
        Assert.That(error.Message, Does.Contain(upstreamMessage));
        Assert.That(Upstream.Requests, Has.Count.EqualTo(1), "retries off: one attempt");
        await SettledAsync(proxy, requests: 1);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    /// <summary>A ChatClient as a user configures it, plus the session header; retries off so a failure is not hidden.</summary>
    private static SdkClient Sdk(ProxyHost proxy, string session)
    {
        var http = SessionHeaderHandler.Client(session);
        var chat = new ChatClient("gpt-4o-mini", new ApiKeyCredential(ApiKey), new OpenAIClientOptions
        {
            Endpoint = new Uri(proxy.ProxyUrl, "/v1"),
            Transport = new HttpClientPipelineTransport(http),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        });
        return new SdkClient(chat, http);
    }

    /// <summary>Each message as (role, text), text parts joined.</summary>
    private static (string Role, string Text)[] Texts(RecordedRequest request)
    {
        using var document = JsonDocument.Parse(request.Body);
        return document.RootElement.GetProperty("messages").EnumerateArray()
            .Select(m => (m.GetProperty("role").GetString()!, Text(m)))
            .ToArray();
    }

    /// <summary>Each message as <c>role:text</c>, with <c>->id</c> for each call and the call id for a tool message.</summary>
    private static string[] Shape(RecordedRequest request)
    {
        using var document = JsonDocument.Parse(request.Body);
        return document.RootElement.GetProperty("messages").EnumerateArray().Select(m =>
        {
            var role = m.GetProperty("role").GetString();
            var calls = m.TryGetProperty("tool_calls", out var c) ? string.Concat(c.EnumerateArray().Select(x => "->" + x.GetProperty("id").GetString())) : "";
            var id = m.TryGetProperty("tool_call_id", out var t) ? t.GetString() + ":" : "";
            return $"{role}:{id}{Text(m)}{calls}";
        }).ToArray();
    }

    private static string Text(JsonElement message) =>
        !message.TryGetProperty("content", out var content) ? ""
        : content.ValueKind == JsonValueKind.String ? content.GetString()!
        : content.ValueKind == JsonValueKind.Array ? string.Concat(content.EnumerateArray().Select(p => p.TryGetProperty("text", out var t) ? t.GetString() : ""))
        : "";

    /// <summary>What OpenAI enforces: every tool message answers a call of the assistant message just before it, and every call is answered before the next other message.</summary>
    private static void AssertToolsPaired(RecordedRequest request)
    {
        using var document = JsonDocument.Parse(request.Body);
        var open = new List<string>();
        foreach (var message in document.RootElement.GetProperty("messages").EnumerateArray())
        {
            var role = message.GetProperty("role").GetString();
            if (role == "tool")
            {
                var id = message.GetProperty("tool_call_id").GetString()!;
                Assert.That(open, Does.Contain(id), $"tool result {id} answers an open call");
                open.Remove(id);
                continue;
            }

            Assert.That(open, Is.Empty, $"calls answered before the next {role} message");
            if (message.TryGetProperty("tool_calls", out var calls))
            {
                open.AddRange(calls.EnumerateArray().Select(c => c.GetProperty("id").GetString()!));
            }
        }
    }

    private readonly record struct Reply(string Text, List<(string Id, string Name, string Arguments)> ToolCalls);

    private sealed class SdkClient(ChatClient chat, HttpClient http) : IDisposable
    {
        public async Task<Reply> AskAsync(ChatMessage[] messages, bool stream, ChatCompletionOptions? options = null)
        {
            if (!stream)
            {
                ChatCompletion completion = await chat.CompleteChatAsync(messages, options);
                return new Reply(
                    string.Concat(completion.Content.Select(p => p.Text)),
                    completion.ToolCalls.Select(c => (c.Id, c.FunctionName, c.FunctionArguments.ToString())).ToList());
            }

            var text = new StringBuilder();
            var calls = new SortedDictionary<int, (string Id, string Name, StringBuilder Arguments)>();
            await foreach (var update in chat.CompleteChatStreamingAsync(messages, options))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }

                foreach (var call in update.ToolCallUpdates)
                {
                    if (!calls.TryGetValue(call.Index, out var current))
                    {
                        current = (call.ToolCallId, call.FunctionName, new StringBuilder());
                        calls[call.Index] = current;
                    }

                    if (call.FunctionArgumentsUpdate is { } arguments && !arguments.ToMemory().IsEmpty)
                    {
                        current.Arguments.Append(arguments.ToString());
                    }
                }
            }

            return new Reply(text.ToString(), calls.Values.Select(c => (c.Id, c.Name, c.Arguments.ToString())).ToList());
        }

        public void Dispose() => http.Dispose();
    }
}
