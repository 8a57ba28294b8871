#pragma warning disable OPENAI001 // The SDK's Responses types are [Experimental].
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;
using Mnemo.Proxy.Tests.Common;
using OpenAI.Responses;
using AI = Microsoft.Extensions.AI;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>
/// Responses clients that keep part of their state with the provider, through the real proxy and redis-server, the fake
/// upstream checking every forwarded request as the provider does: a full-history client that resends earlier answers as
/// <c>item_reference</c> items (what the Vercel AI SDK sends with <c>store: true</c>), and a tool loop whose result goes
/// out chained by <c>previous_response_id</c> (Microsoft.Extensions.AI's function invocation, as Agent Framework runs it).
/// Nothing reaches the model twice, every turn is stored once, and the session goes on in the other APIs.
/// </summary>
public sealed class ResponsesStateTests : FunctionalTest
{
    private const string Dialect = "OpenAIResponses";
    private const string ToolOutput = "Sunny, 22 degrees Celsius";

    private static readonly ResponseTool s_weather = ResponseTool.CreateFunctionTool(
        functionName: "get_current_weather",
        functionParameters: BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}"""),
        strictModeEnabled: false,
        functionDescription: "Get the current weather in a given location");

    [TestCase(false)]
    [TestCase(true)]
    public async Task FullHistoryWithItemReferences_ToolLoopOverFourTurns_NothingInjected_EachTurnStoredOnce_AndTheOtherApisCarryIt(bool stream)
    {
        const string Session = "resp-refs";
        const string Q1 = "Tell me a story about a unicorn.";
        const string Q2 = "What is the weather like in Boston?";
        const string Q4 = "Thanks. And tomorrow?";
        Upstream.UniqueIds = true;
        await using var proxy = await StartProxyAsync();
        using var client = new RecordingClient(Session);
        var responses = client.Responses(proxy);

        // The client keeps the whole conversation: its own messages as sent, the model's items as references to them.
        // No wait between the requests: such a client sends the next one as soon as it has the answer.
        List<ResponseItem> conversation = [ResponseItem.CreateUserMessageItem(Q1)];
        var first = await CreateAsync(responses, conversation, stream);
        AssertForwardedAsSent(client, Q1);
        conversation.AddRange(References(first));
        conversation.Add(ResponseItem.CreateUserMessageItem(Q2));

        Upstream.Answer(Dialect, stream: "stream-function-call.sse", json: "response-function-call.json");
        var second = await CreateAsync(responses, conversation, stream);
        AssertForwardedAsSent(client, Q1, Q2);
        var call = second.OutputItems.OfType<FunctionCallResponseItem>().Single();
        conversation.AddRange(References(second));
        conversation.Add(ResponseItem.CreateFunctionCallOutputItem(call.CallId, ToolOutput));

        Upstream.Answer(Dialect, stream: "stream.sse", json: "response.json");
        var third = await CreateAsync(responses, conversation, stream);
        AssertForwardedAsSent(client, Q1, Q2, ToolOutput);
        conversation.AddRange(References(third));
        conversation.Add(ResponseItem.CreateUserMessageItem(Q4));
        var fourth = await CreateAsync(responses, conversation, stream);
        AssertForwardedAsSent(client, Q1, Q2, ToolOutput, Q4);
        Assert.That(Upstream.Requests, Has.Count.EqualTo(4), "no SDK retry hid a failure");

        using (var last = JsonDocument.Parse(client.Sent[3]))
        {
            Assert.That(Transcript(last.RootElement.GetProperty("input")), Is.EqualTo(new[]
            {
                $"user:{Q1}", $"ref:{first.OutputItems[0].Id}", $"user:{Q2}", $"ref:{call.Id}", $"output:{call.CallId}:{ToolOutput}", $"ref:{third.OutputItems[0].Id}", $"user:{Q4}",
            }), "the shape the Vercel AI SDK sends with store: true");
        }

        await WaitForTurnsAsync(Session, 4);
        var stored = await StoredTurnsAsync(Session);
        var callLine = $"call:{call.CallId}:{call.FunctionName}:{call.FunctionArguments}";
        Assert.That(stored.Select(t => Transcript(t.GetProperty("messages"))), Is.EqualTo(new[]
        {
            new[] { $"user:{Q1}", $"assistant:{first.GetOutputText()}" },
            new[] { $"user:{Q2}", callLine },
            new[] { $"output:{call.CallId}:{ToolOutput}", $"assistant:{third.GetOutputText()}" },
            new[] { $"user:{Q4}", $"assistant:{fourth.GetOutputText()}" },
        }), "each turn stored once, in order, with only what was new in it");
        var storedMessages = string.Concat(stored.Select(t => t.GetProperty("messages").GetRawText()));
        Assert.That(storedMessages, Does.Not.Contain("item_reference"), "a stored turn holds no reference to an item only the provider can resolve");
        Assert.That(Occurrences(storedMessages, "function_call_output"), Is.EqualTo(1), "the tool output is stored once");

        // The same session, one new turn in each of the other APIs: the four turns converted, the call paired with its result.
        string[] conversationLines =
        [
            $"user:{Q1}", $"assistant:{first.GetOutputText()}", $"user:{Q2}", $"call:{call.CallId}:{call.FunctionName}",
            $"result:{call.CallId}:{ToolOutput}", $"assistant:{third.GetOutputText()}", $"user:{Q4}", $"assistant:{fourth.GetOutputText()}",
        ];
        await AssertOtherApisCarryAsync(proxy, Session, stream, conversationLines, turnsBefore: 4, Q1, Q2, ToolOutput, Q4);
    }

    /// <remarks>
    /// Without streaming the client is Microsoft.Extensions.AI's function invocation over the SDK's Responses client, which
    /// chains the tool result by <c>previous_response_id</c> on its own. Streaming, it is the SDK with
    /// <see cref="CreateResponseOptions.PreviousResponseId"/> set by hand, the same requests: Microsoft.Extensions.AI.OpenAI
    /// 10.11.0 is built against OpenAI 2.14, whose streaming method OpenAI 2.15 changed, so its streaming Responses client
    /// fails with a MissingMethodException.
    /// </remarks>
    [TestCase(false)]
    [TestCase(true)]
    public async Task ToolLoopChainedByPreviousResponseId_ResultForwardedAsSent_LaterTurnsCarryTheWholeLoop_AndChatContinuesIt(bool stream)
    {
        const string Session = "resp-chained-loop";
        const string Question = "What is the weather like?";
        const string Q3 = "Thanks. Should I take an umbrella?";
        const string Q4 = "And tomorrow?";
        Upstream.UniqueIds = true;
        await using var proxy = await StartProxyAsync();
        // The model calls the tool in the first answer only; the streaming and JSON fixtures name different tools.
        using var client = new RecordingClient(Session, index => Upstream.Answer(Dialect,
            stream: index == 0 ? "stream-function-call.sse" : "stream.sse",
            json: index == 0 ? "response-function-call.json" : "response.json"));
        var responses = client.Responses(proxy);
        var invoked = 0;
        Func<string, Task<string>> ask = stream ? ChainedSdk(responses, () => invoked++) : ChainedMicrosoftExtensionsAI(responses, () => invoked++);

        var answer2 = await ask(Question);
        Assert.That(invoked, Is.EqualTo(1), "the client ran the tool once");
        Assert.That(client.Sent, Has.Count.EqualTo(2), "the tool loop: the question, then the result");
        var answer3 = await ask(Q3);
        var answer4 = await ask(Q4);

        Assert.That(Upstream.Requests, Has.Count.EqualTo(4), "no SDK retry hid a failure");
        Assert.That(client.Sent, Has.Count.EqualTo(4));
        var firstResponseId = Regex.Match(client.Received[0], "\"(resp_[A-Za-z0-9]+)\"").Groups[1].Value;
        var (callId, name, arguments) = stream
            ? ("call_0UFGPwrziw5rbinYp7rthrTb", "get_weather_at_location", """{"location":"San Francisco, CA"}""")
            : ("call_unLAR8MvFNptuiZK6K6HCy5k", "get_current_weather", """{"location":"Boston, MA","unit":"celsius"}""");
        callId = Regex.Match(client.Received[0], $"\"({callId}u[0-9]+)\"").Groups[1].Value;
        Assert.That(callId, Is.Not.Empty, "the call id the client received");

        string output;
        using (var request1 = JsonDocument.Parse(client.Sent[0]))
        using (var request2 = JsonDocument.Parse(client.Sent[1]))
        {
            Assert.That(request1.RootElement.TryGetProperty("previous_response_id", out _), Is.False, client.Encoded(0));
            Assert.That(Transcript(request1.RootElement.GetProperty("input")), Is.EqualTo(new[] { $"user:{Question}" }));
            Assert.That(request2.RootElement.TryGetProperty("previous_response_id", out var previous) ? previous.GetString() : null, Is.EqualTo(firstResponseId),
                $"the result is chained to the response with the call: {client.Encoded(1)}");
            var input = request2.RootElement.GetProperty("input");
            Assert.That(input.GetArrayLength(), Is.EqualTo(1), $"only the result goes out, the provider holds the rest: {client.Encoded(1)}");
            output = Text(input[0].GetProperty("output"));
            Assert.That(Transcript(input), Is.EqualTo(new[] { $"output:{callId}:{output}" }));
            // Microsoft.Extensions.AI sends the tool's return value as JSON: the string in quotes.
            Assert.That(output, Does.Contain(ToolOutput));
        }

        Assert.That(Upstream.Requests[1].Body, Is.EqualTo(client.Sent[1]), "the chained request is forwarded byte for byte as the client sent it: nothing injected");

        var callLine = $"call:{callId}:{name}:{arguments}";
        string[] whole = [$"user:{Question}", callLine, $"output:{callId}:{output}", $"assistant:{answer2}", $"user:{Q3}", $"assistant:{answer3}", $"user:{Q4}"];
        for (var i = 2; i < 4; i++)
        {
            var forwarded = Upstream.Requests[i];
            using var body = JsonDocument.Parse(forwarded.Body);
            using var sent = JsonDocument.Parse(client.Sent[i]);
            Assert.That(sent.RootElement.TryGetProperty("previous_response_id", out _), Is.False, $"request {i + 1} is a new turn, not chained: {client.Encoded(i)}");
            Assert.That(Transcript(sent.RootElement.GetProperty("input")), Is.EqualTo(new[] { whole[i == 2 ? 4 : 6] }), $"request {i + 1}: only the new question");
            Assert.That(ProviderRules.OpenAIResponses(body.RootElement, Upstream.StoredItem), Is.Null, $"request {i + 1}: {forwarded.BodyText}");
            Assert.That(Transcript(body.RootElement.GetProperty("input")), Is.EqualTo(whole[..(i == 2 ? 5 : 7)]),
                $"request {i + 1} carries the whole conversation, the call paired with its result: {forwarded.BodyText}");
        }

        await WaitForTurnsAsync(Session, 4);
        var stored = await StoredTurnsAsync(Session);
        Assert.That(stored.Select(t => Transcript(t.GetProperty("messages"))), Is.EqualTo(new[]
        {
            new[] { $"user:{Question}", callLine },
            new[] { $"output:{callId}:{output}", $"assistant:{answer2}" },
            new[] { $"user:{Q3}", $"assistant:{answer3}" },
            new[] { $"user:{Q4}", $"assistant:{answer4}" },
        }), "each turn stored once, in order, the chained one too");

        const string Q5 = "Summarise our conversation.";
        await SendOkAsync(proxy, ProxyHost.Chat(ChatBody(Q5, stream), Session));
        var chatBody = Body(Upstream.LastRequest);
        Assert.That(ProviderRules.OpenAIChat(chatBody), Is.Null, chatBody.GetRawText());
        Assert.That(ChatTranscript(chatBody), Is.EqualTo(new[]
        {
            $"user:{Question}", $"call:{callId}:{name}", $"result:{callId}:{output}", $"assistant:{answer2}",
            $"user:{Q3}", $"assistant:{answer3}", $"user:{Q4}", $"assistant:{answer4}", $"user:{Q5}",
        }), chatBody.GetRawText());
        await WaitForTurnsAsync(Session, 5);
    }

    [Test]
    public async Task ReferenceToAnItemMnemoNeverStored_AfterTheNewMessage_IsForwardedAsSent_AndNeverStored()
    {
        Upstream.UniqueIds = true;
        await using var proxy = await StartProxyAsync();
        const string session = "resp-unknown-reference";
        var (_, first) = await SendAsync(proxy, ProxyHost.Chat("""{"model":"m","store":true,"input":[{"role":"user","content":"Hello!"}]}""", session, path: "/v1/responses"));
        var answerId = JsonDocument.Parse(first).RootElement.GetProperty("output")[0].GetProperty("id").GetString();
        await WaitForTurnsAsync(session, 1);

        // The answer referred to by its id, then the new message, then a reference to an item only the provider holds
        // (a hosted tool's output, say): the new turn is the message alone.
        var body = $$"""{"model":"m","store":true,"input":[{"role":"user","content":"Hello!"},{"type":"item_reference","id":"{{answerId}}"},{"role":"user","content":"And then?"},{"type":"item_reference","id":"ws_67ccf18f64008190a39b619f4c8455ef087f1"}]}""";
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body, session, path: "/v1/responses"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Upstream.LastRequest.BodyText, Is.EqualTo(body), "the client sent everything: nothing injected, the references forwarded as sent");
        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync(session), t => t.Length == 2, "the second turn");
        var stored = turns[1].GetProperty("messages");
        Assert.That(stored.GetRawText(), Does.Not.Contain("item_reference"));
        Assert.That(Transcript(stored)[0], Is.EqualTo("user:And then?"));
        Assert.That(stored.GetArrayLength(), Is.EqualTo(2), "the new message and the answer");
    }

    /// <summary>
    /// Microsoft.Extensions.AI's function invocation over the Responses client (Agent Framework's stack): each question a
    /// new conversation (no conversation id), the tool loop inside it chained by the response id, as it does by default.
    /// </summary>
    private static Func<string, Task<string>> ChainedMicrosoftExtensionsAI(ResponsesClient responses, Action invoked)
    {
        string Weather(string location)
        {
            invoked();
            return ToolOutput;
        }

        var chat = new ChatClientBuilder(responses.AsIChatClient("gpt-4o-mini")).UseFunctionInvocation().Build();
        return async question => (await chat.GetResponseAsync([new AI.ChatMessage(AI.ChatRole.User, question)], new ChatOptions
        {
            Tools =
            [
                AIFunctionFactory.Create(Weather, "get_current_weather", "Get the current weather in a given location"),
                AIFunctionFactory.Create(Weather, "get_weather_at_location", "Get the weather at a location"),
            ],
        })).Text;
    }

    /// <summary>The same tool loop with the SDK, streaming: the result sent alone with <c>previous_response_id</c>.</summary>
    private static Func<string, Task<string>> ChainedSdk(ResponsesClient responses, Action invoked) => async question =>
    {
        var answer = await CreateAsync(responses, [ResponseItem.CreateUserMessageItem(question)], stream: true, store: null);
        while (answer.OutputItems.OfType<FunctionCallResponseItem>().ToList() is { Count: > 0 } calls)
        {
            foreach (var _ in calls)
            {
                invoked();
            }

            answer = await CreateAsync(responses, calls.Select(c => ResponseItem.CreateFunctionCallOutputItem(c.CallId, ToolOutput)), stream: true, store: null, previous: answer.Id);
        }

        return answer.GetOutputText();
    };

    /// <summary>
    /// The client's last request, as the upstream got it: valid (its references resolved as the provider resolves them), each
    /// of <paramref name="once"/> in it exactly once, no stored answer put in front of the client's reference to it, and, as
    /// the client sent the whole conversation, nothing injected at all: the bytes the client sent.
    /// </summary>
    private void AssertForwardedAsSent(RecordingClient client, params string[] once)
    {
        var index = client.Sent.Count - 1;
        Assert.That(Upstream.Requests, Has.Count.EqualTo(index + 1), "one upstream request per client request");
        var forwarded = Upstream.Requests[index];
        using var body = JsonDocument.Parse(forwarded.Body);
        Assert.That(ProviderRules.OpenAIResponses(body.RootElement, Upstream.StoredItem), Is.Null, $"request {index + 1}: {forwarded.BodyText}");
        foreach (var text in once)
        {
            Assert.That(Occurrences(JsonText.Strings(body.RootElement), text), Is.EqualTo(1), $"request {index + 1} carries '{text}' exactly once: {forwarded.BodyText}");
        }

        using var sent = JsonDocument.Parse(client.Sent[index]);
        Assert.That(Transcript(body.RootElement.GetProperty("input")), Is.EqualTo(Transcript(sent.RootElement.GetProperty("input"))),
            $"request {index + 1}: the client sent every turn, the answers as references; no stored answer is injected in front of them");
        Assert.That(forwarded.Body, Is.EqualTo(client.Sent[index]), $"request {index + 1} is forwarded byte for byte as the client sent it");
    }

    /// <summary>
    /// One new-turn request in Chat, Anthropic Messages and Ollama, in that order, on <paramref name="session"/>: each valid for
    /// its API and carrying <paramref name="conversation"/> first (as <c>role:text</c>, <c>call:id:name</c>, <c>result:id:text</c>
    /// lines), each of <paramref name="once"/> exactly once, and its own question last.
    /// </summary>
    private async Task AssertOtherApisCarryAsync(ProxyHost proxy, string session, bool stream, string[] conversation, int turnsBefore, params string[] once)
    {
        var requests = new (string Api, string Path, string Body, Func<JsonElement, string?> Rules, Func<JsonElement, string[]> Transcript)[]
        {
            ("Chat", "/v1/chat/completions", ChatBody("Summarise it for chat.", stream), ProviderRules.OpenAIChat, ChatTranscript),
            ("Anthropic", "/v1/messages", $$"""{"model":"claude-sonnet-4-5","max_tokens":256,"stream":{{Bool(stream)}},"messages":[{"role":"user","content":"Summarise it for Claude."}]}""",
                ProviderRules.AnthropicMessages, AnthropicTranscript),
            ("Ollama", "/api/chat", $$"""{"model":"llama3.2","stream":{{Bool(stream)}},"messages":[{"role":"user","content":"Summarise it for Ollama."}]}""",
                ProviderRules.OllamaChat, OllamaTranscript),
        };
        var turns = turnsBefore;
        foreach (var (api, path, requestBody, rules, transcript) in requests)
        {
            await SendOkAsync(proxy, ProxyHost.Chat(requestBody, session, path: path));
            var body = Body(Upstream.LastRequest);
            Assert.That(rules(body), Is.Null, $"{api}: {body.GetRawText()}");
            var lines = transcript(body);
            Assert.That(lines.Take(conversation.Length), Is.EqualTo(conversation), $"{api} carries the Responses turns first: {body.GetRawText()}");
            Assert.That(lines[^1], Does.StartWith("user:Summarise it for"), $"{api}: its own question last");
            foreach (var text in once)
            {
                Assert.That(Occurrences(JsonText.Strings(body), text), Is.EqualTo(1), $"{api} carries '{text}' exactly once: {body.GetRawText()}");
            }

            await WaitForTurnsAsync(session, ++turns);
        }
    }

    private static async Task<ResponseResult> CreateAsync(ResponsesClient client, IEnumerable<ResponseItem> input, bool stream, bool? store = true, string? previous = null)
    {
        var options = new CreateResponseOptions { Model = "gpt-4o-mini", StoredOutputEnabled = store, PreviousResponseId = previous, Tools = { s_weather } };
        foreach (var item in input)
        {
            options.InputItems.Add(item);
        }

        if (!stream)
        {
            return await client.CreateResponseAsync(options);
        }

        options.StreamingEnabled = true;
        ResponseResult? completed = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(options))
        {
            if (update is StreamingResponseCompletedUpdate done)
            {
                completed = done.Response;
            }
        }

        Assert.That(completed, Is.Not.Null, "the SDK saw response.completed");
        return completed!;
    }

    /// <summary>A reference to each item the model produced, by the id the provider gave it.</summary>
    private static IEnumerable<ResponseItem> References(ResponseResult response) =>
        response.OutputItems.Select(item => (ResponseItem)ResponseItem.CreateReferenceItem(item.Id));

    private static string ChatBody(string question, bool stream) =>
        $$"""{"model":"gpt-4o-mini","stream":{{Bool(stream)}},"messages":[{"role":"user","content":{{JsonSerializer.Serialize(question)}}}]}""";

    private static string Bool(bool value) => value ? "true" : "false";

    private static async Task SendOkAsync(ProxyHost proxy, HttpRequestMessage request)
    {
        var (response, body) = await SendAsync(proxy, request);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), Encoding.UTF8.GetString(body));
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("hit"));
    }

    private static JsonElement Body(RecordedRequest request) => JsonDocument.Parse(request.Body).RootElement.Clone();

    private static int Occurrences(string text, string value)
    {
        var count = 0;
        for (var at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    /// <summary>Each Responses input item as one line: <c>role:text</c>, <c>call:id:name:arguments</c>, <c>output:id:text</c>, <c>ref:id</c>, or its type.</summary>
    private static string[] Transcript(JsonElement input) => input.EnumerateArray().Select(item =>
    {
        var type = item.TryGetProperty("type", out var t) ? t.GetString() : "message";
        return type switch
        {
            "message" => $"{item.GetProperty("role").GetString()}:{Text(item.GetProperty("content"))}",
            "function_call" => $"call:{item.GetProperty("call_id").GetString()}:{item.GetProperty("name").GetString()}:{item.GetProperty("arguments").GetString()}",
            "function_call_output" => $"output:{item.GetProperty("call_id").GetString()}:{Text(item.GetProperty("output"))}",
            "item_reference" => $"ref:{item.GetProperty("id").GetString()}",
            _ => type!,
        };
    }).ToArray();

    /// <summary>Chat messages as lines: <c>role:text</c> (when there is text), <c>call:id:name</c> per tool call, <c>result:id:text</c>.</summary>
    private static string[] ChatTranscript(JsonElement body)
    {
        var lines = new List<string>();
        foreach (var message in body.GetProperty("messages").EnumerateArray())
        {
            var role = message.GetProperty("role").GetString();
            var text = message.TryGetProperty("content", out var content) ? Text(content) : "";
            if (role == "tool")
            {
                lines.Add($"result:{message.GetProperty("tool_call_id").GetString()}:{text}");
                continue;
            }

            if (text.Length > 0)
            {
                lines.Add($"{role}:{text}");
            }

            if (message.TryGetProperty("tool_calls", out var calls))
            {
                lines.AddRange(calls.EnumerateArray().Select(c => $"call:{c.GetProperty("id").GetString()}:{c.GetProperty("function").GetProperty("name").GetString()}"));
            }
        }

        return [.. lines];
    }

    /// <summary>Anthropic messages as lines: <c>role:text</c> per run of text blocks, <c>call:id:name</c> per tool_use, <c>result:id:text</c> per tool_result.</summary>
    private static string[] AnthropicTranscript(JsonElement body)
    {
        var lines = new List<string>();
        foreach (var message in body.GetProperty("messages").EnumerateArray())
        {
            var role = message.GetProperty("role").GetString();
            var content = message.GetProperty("content");
            if (content.ValueKind == JsonValueKind.String)
            {
                lines.Add($"{role}:{content.GetString()}");
                continue;
            }

            var text = new StringBuilder();
            foreach (var block in content.EnumerateArray())
            {
                var type = block.GetProperty("type").GetString();
                if (type == "text")
                {
                    text.Append(block.GetProperty("text").GetString());
                    continue;
                }

                Flush();
                if (type == "tool_use")
                {
                    lines.Add($"call:{block.GetProperty("id").GetString()}:{block.GetProperty("name").GetString()}");
                }
                else if (type == "tool_result")
                {
                    lines.Add($"result:{block.GetProperty("tool_use_id").GetString()}:{(block.TryGetProperty("content", out var c) ? Text(c) : "")}");
                }
            }

            Flush();

            void Flush()
            {
                if (text.Length > 0)
                {
                    lines.Add($"{role}:{text}");
                    text.Clear();
                }
            }
        }

        return [.. lines];
    }

    /// <summary>Ollama messages as lines, as <see cref="ChatTranscript"/> writes them (an id Ollama's form leaves out is empty).</summary>
    private static string[] OllamaTranscript(JsonElement body)
    {
        var lines = new List<string>();
        foreach (var message in body.GetProperty("messages").EnumerateArray())
        {
            var role = message.GetProperty("role").GetString();
            var text = message.TryGetProperty("content", out var content) ? content.GetString() ?? "" : "";
            if (role == "tool")
            {
                lines.Add($"result:{(message.TryGetProperty("tool_call_id", out var id) ? id.GetString() : "")}:{text}");
                continue;
            }

            if (text.Length > 0)
            {
                lines.Add($"{role}:{text}");
            }

            if (message.TryGetProperty("tool_calls", out var calls))
            {
                lines.AddRange(calls.EnumerateArray().Select(c =>
                    $"call:{(c.TryGetProperty("id", out var id) ? id.GetString() : "")}:{c.GetProperty("function").GetProperty("name").GetString()}"));
            }
        }

        return [.. lines];
    }

    /// <summary>A string content, or the text of its parts (a part without text as <c>[type]</c>).</summary>
    private static string Text(JsonElement content) => content.ValueKind switch
    {
        JsonValueKind.String => content.GetString()!,
        JsonValueKind.Array => string.Concat(content.EnumerateArray().Select(p => p.TryGetProperty("text", out var text) ? text.GetString() : $"[{p.GetProperty("type").GetString()}]")),
        _ => "",
    };

    /// <summary>
    /// The HTTP client an SDK is given: puts the session header on every request, and keeps each request body as the
    /// client sent it and each response body as it received it; <c>beforeEach</c> runs before each request is sent, with its index.
    /// </summary>
    private sealed class RecordingClient(string session, Action<int>? beforeEach = null) : IDisposable
    {
        private readonly Recorder _recorder = new(session, beforeEach);

        public IReadOnlyList<byte[]> Sent => _recorder.Sent;

        public IReadOnlyList<string> Received => _recorder.Received;

        public string Encoded(int index) => Encoding.UTF8.GetString(Sent[index]);

        /// <summary>The official SDK's Responses client, pointed at the proxy through this client; retries off so none hides a failure.</summary>
        public ResponsesClient Responses(ProxyHost proxy) => new(new ApiKeyCredential(ApiKey), new ResponsesClientOptions
        {
            Endpoint = new Uri(proxy.ProxyUrl, "/v1"),
            Transport = new HttpClientPipelineTransport(new HttpClient(_recorder, disposeHandler: false)),
            RetryPolicy = new ClientRetryPolicy(0),
        });

        public void Dispose() => _recorder.Dispose();

        private sealed class Recorder(string session, Action<int>? beforeEach)
            : DelegatingHandler(new SocketsHttpHandler { UseProxy = false, AutomaticDecompression = DecompressionMethods.None })
        {
            private readonly Lock _lock = new();
            private readonly List<byte[]> _sent = [];
            private readonly List<string> _received = [];

            public IReadOnlyList<byte[]> Sent
            {
                get
                {
                    lock (_lock)
                    {
                        return [.. _sent];
                    }
                }
            }

            public IReadOnlyList<string> Received
            {
                get
                {
                    lock (_lock)
                    {
                        return [.. _received];
                    }
                }
            }

            protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
            {
                request.Headers.Remove(SessionHeaderHandler.Header);
                request.Headers.TryAddWithoutValidation(SessionHeaderHandler.Header, session);
                var body = request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(cancellationToken);
                int index;
                lock (_lock)
                {
                    index = _sent.Count;
                    _sent.Add(body);
                }

                beforeEach?.Invoke(index);
                var response = await base.SendAsync(request, cancellationToken);
                // Read whole before the SDK reads it (a stream too: the fake sends it all at once), to know the ids it carried.
                await response.Content.LoadIntoBufferAsync(cancellationToken);
                var received = await response.Content.ReadAsStringAsync(cancellationToken);
                lock (_lock)
                {
                    _received.Add(received);
                }

                return response;
            }
        }
    }
}
