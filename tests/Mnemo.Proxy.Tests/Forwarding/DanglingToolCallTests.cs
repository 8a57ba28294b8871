#pragma warning disable OPENAI001 // The SDK's Responses types are [Experimental].
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using Mnemo.Proxy.Tests.Common;
using OllamaSharp;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Responses;
using AnthropicTool = Anthropic.Models.Messages.Tool;
using OllamaMessage = OllamaSharp.Models.Chat.Message;
using OllamaTool = OllamaSharp.Models.Chat.Tool;
using Pairing = Mnemo.Proxy.Dialects.Pairing;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>
/// A tool call the client never answers (the tool failed, the user moved on), with each API's official SDK: every later
/// request, in that API and in the three others, carries the call closed by a result saying it has none, right after
/// it, so the provider accepts the conversation; the closing is the same bytes on every request, and is never stored.
/// </summary>
public sealed class DanglingToolCallTests : FunctionalTest
{
    private const string Session = "dangling";
    private const string Weather = "What is the weather in Paris?";
    private const string NeverMind = "Never mind. What is my name?";
    private const string Parameters = """{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}""";

    private static readonly Api s_chat = new(
        "OpenAIChat", "openai-chat", "/v1/chat/completions", "messages",
        Tool: ("stream-tool-calls.sse", "completion-tool-calls.json"), Text: ("stream.sse", "completion.json"), CallHasText: false,
        ProviderRules.OpenAIChat, ChatSdk,
        NewTurn: (question, stream) => $$$"""{"model":"gpt-4o-mini","stream":{{{Json(stream)}}},"tools":[{"type":"function","function":{"name":"get_weather","parameters":{{{Parameters}}}}}],"messages":[{"role":"user","content":"{{{question}}}"}]}""");

    private static readonly Api s_responses = new(
        "OpenAIResponses", "openai-responses", "/v1/responses", "input",
        Tool: ("stream-function-call.sse", "response-function-call.json"), Text: ("stream.sse", "response.json"), CallHasText: false,
        ProviderRules.OpenAIResponses, ResponsesSdk,
        NewTurn: (question, stream) => $$$"""{"model":"gpt-4.1","stream":{{{Json(stream)}}},"tools":[{"type":"function","name":"get_weather","parameters":{{{Parameters}}}}],"input":[{"role":"user","content":"{{{question}}}"}]}""");

    private static readonly Api s_anthropic = new(
        "AnthropicMessages", "anthropic-messages", "/v1/messages", "messages",
        Tool: ("stream-tool-use.sse", "message-tool-use.json"), Text: ("stream.sse", "message.json"), CallHasText: true,
        ProviderRules.AnthropicMessages, AnthropicSdk,
        NewTurn: (question, stream) => $$$"""{"model":"claude-sonnet-4-5","max_tokens":256,"stream":{{{Json(stream)}}},"tools":[{"name":"get_weather","input_schema":{{{Parameters}}}}],"messages":[{"role":"user","content":"{{{question}}}"}]}""");

    private static readonly Api s_ollama = new(
        "OllamaChat", "ollama-chat", "/api/chat", "messages",
        Tool: ("stream-tool-calls.ndjson", "chat-tool-calls.json"), Text: ("stream.ndjson", "chat.json"), CallHasText: false,
        ProviderRules.OllamaChat, OllamaSdk,
        NewTurn: (question, stream) => $$$"""{"model":"llama3.2","stream":{{{Json(stream)}}},"tools":[{"type":"function","function":{"name":"get_weather","parameters":{{{Parameters}}}}}],"messages":[{"role":"user","content":"{{{question}}}"}]}""");

    private static readonly Api[] s_apis = [s_chat, s_responses, s_anthropic, s_ollama];

    [TestCase(false)]
    [TestCase(true)]
    public Task OpenAIChatSdk_ToolCallNeverAnswered_IsClosedInEveryLaterRequestOfEveryApi(bool stream) => ConverseAsync(s_chat, stream);

    [TestCase(false)]
    [TestCase(true)]
    public Task OpenAIResponsesSdk_ToolCallNeverAnswered_IsClosedInEveryLaterRequestOfEveryApi(bool stream) => ConverseAsync(s_responses, stream);

    [TestCase(false)]
    [TestCase(true)]
    public Task AnthropicSdk_ToolCallNeverAnswered_IsClosedInEveryLaterRequestOfEveryApi(bool stream) => ConverseAsync(s_anthropic, stream);

    [TestCase(false)]
    [TestCase(true)]
    public Task OllamaSharp_ToolCallNeverAnswered_IsClosedInEveryLaterRequestOfEveryApi(bool stream) => ConverseAsync(s_ollama, stream);

    /// <summary>
    /// The weather question answered with a tool call whose result the client never sends; four new questions through
    /// the same SDK; one more through each other API, raw; then the store and the metric.
    /// </summary>
    private async Task ConverseAsync(Api api, bool stream)
    {
        // Several fixture answers in one conversation: each gets ids of its own, as a provider's are.
        Upstream.UniqueIds = true;
        await using var proxy = await StartProxyAsync();
        using var http = SessionHeaderHandler.Client(Session, proxy.ProxyUrl);
        var ask = api.Sdk(http, proxy);

        Upstream.Answer(api.Folder, stream: api.Tool.Stream, json: api.Tool.Json);
        var call = (await ask(Weather, stream)).Call;
        Assert.That(call, Is.Not.Null.And.Not.Empty, "the SDK saw the tool call");

        // The client does not send the call's result: it asks something else.
        Upstream.Answer(api.Folder, stream: api.Text.Stream, json: api.Text.Json);
        var asked = new List<(string Question, string Dialect)> { (Weather, api.Label) };
        List<string> expected = ["user:" + Weather, .. api.CallHasText ? ["assistant"] : Array.Empty<string>(), "call:" + call, "result:" + Pairing.ClosingText];
        string? injected = null;
        for (var turn = 2; turn <= 5; turn++)
        {
            var question = turn == 2 ? NeverMind : $"Follow-up {turn}: what did I ask first?";
            var reply = await ask(question, stream);
            Assert.That(reply.Text, Is.Not.Empty, $"turn {turn}: the SDK read the answer through the proxy");

            var body = Forwarded(api);
            var items = body.GetProperty(api.Array);
            Assert.That(api.Rules(body), Is.Null, $"turn {turn}: valid for {api.Folder}: {body.GetRawText()}");
            Assert.That(Transcript(items), Is.EqualTo(expected.Append("user:" + question)),
                $"turn {turn}: the question, the call, its closing result right after it, the later turns, the new message: {body.GetRawText()}");

            // The client sent one message; everything before it was injected, and only grows at its end.
            var now = string.Join(",", items.EnumerateArray().SkipLast(1).Select(m => m.GetRawText()));
            if (injected is not null)
            {
                Assert.That(now, Does.StartWith(injected), $"turn {turn}: the injected part of the turn before is a byte prefix of this one's (provider prompt caches keep hitting)");
            }

            injected = now;
            asked.Add((question, api.Label));
            expected.AddRange(["user:" + question, "assistant"]);
        }

        foreach (var other in s_apis.Where(a => a != api))
        {
            var question = $"Asked through {other.Label}: what did I ask first?";
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(other.NewTurn(question, stream), Session, path: other.Path));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"{other.Folder}: {Upstream.LastRequest.Rejection}");

            var body = Forwarded(other);
            Assert.That(other.Rules(body), Is.Null, $"valid for {other.Folder}: {body.GetRawText()}");
            Assert.That(Transcript(body.GetProperty(other.Array)), Is.EqualTo(expected.Append("user:" + question)),
                $"{other.Folder}: the whole conversation, the call closed: {body.GetRawText()}");
            asked.Add((question, other.Label));
            expected.AddRange(["user:" + question, "assistant"]);
        }

        await SettledAsync(proxy, asked.Count);
        var turns = await StoredTurnsAsync(Session);
        Assert.That(turns, Has.Length.EqualTo(asked.Count), "each exchange stored once");
        Assert.Multiple(() =>
        {
            for (var i = 0; i < turns.Length; i++)
            {
                var messages = turns[i].GetProperty("messages").GetRawText();
                Assert.That(messages, Does.Contain(asked[i].Question), $"stored turn {i + 1} is its own exchange, in order");
                Assert.That(messages, Does.Not.Contain(Pairing.ClosingText), $"stored turn {i + 1}: the closing is made at each request, never stored");
                Assert.That(turns[i].GetProperty("d").GetString(), Is.EqualTo(asked[i].Dialect), $"stored turn {i + 1} keeps the dialect it came in");
            }
        });

        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.Multiple(() =>
        {
            foreach (var each in s_apis)
            {
                Assert.That(WriteBack.WriteBackTests.Metric(metrics, $$"""mnemo_context_fixes_total{dialect="{{each.Label}}",reason="dangling_call"}"""), Is.GreaterThan(0),
                    $"the closings of requests in {each.Label} are counted");
            }
        });
    }

    private JsonElement Forwarded(Api api)
    {
        var request = Upstream.LastRequest;
        Assert.That(request.Path, Is.EqualTo(api.Path));
        Assert.That(request.Rejection, Is.Null, "the fake upstream, checking as the provider does, accepted it");
        using var document = JsonDocument.Parse(request.Body);
        return document.RootElement.Clone();
    }

    /// <summary>
    /// A forwarded conversation in any of the four APIs as entries every API can be compared by: <c>user:text</c>,
    /// <c>assistant</c> (an answer's text: fixtures differ by API and mode), <c>call:name</c>, <c>result:text</c>, in
    /// the order the model reads them. The ids' pairing is the provider rules' to check.
    /// </summary>
    private static List<string> Transcript(JsonElement items)
    {
        var entries = new List<string>();
        foreach (var item in items.EnumerateArray())
        {
            switch (item.TryGetProperty("type", out var type) ? type.GetString() : "message")
            {
                case "function_call":
                    entries.Add("call:" + item.GetProperty("name").GetString());
                    continue;
                case "function_call_output":
                    entries.Add("result:" + Text(item.GetProperty("output")));
                    continue;
            }

            var role = item.GetProperty("role").GetString();
            if (role == "tool")
            {
                entries.Add("result:" + Text(item.GetProperty("content")));
                continue;
            }

            var text = new StringBuilder();
            void Flush()
            {
                if (text.Length > 0)
                {
                    entries.Add(role == "user" ? "user:" + text : "assistant");
                    text.Clear();
                }
            }

            var content = item.TryGetProperty("content", out var c) ? c : default;
            if (content.ValueKind == JsonValueKind.String)
            {
                text.Append(content.GetString());
            }
            else if (content.ValueKind == JsonValueKind.Array)
            {
                foreach (var block in content.EnumerateArray())
                {
                    var kind = block.TryGetProperty("type", out var k) ? k.GetString() : null;
                    if (kind is "tool_use" or "tool_result")
                    {
                        Flush();
                        entries.Add(kind == "tool_use" ? "call:" + block.GetProperty("name").GetString() : "result:" + Text(block.GetProperty("content")));
                    }
                    else if (block.TryGetProperty("text", out var part))
                    {
                        text.Append(part.GetString());
                    }
                }
            }

            Flush();
            if (item.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
            {
                entries.AddRange(calls.EnumerateArray().Select(call => "call:" + call.GetProperty("function").GetProperty("name").GetString()));
            }
        }

        return entries;
    }

    private static string Text(JsonElement content) =>
        content.ValueKind == JsonValueKind.String ? content.GetString()!
        : content.ValueKind == JsonValueKind.Array ? string.Concat(content.EnumerateArray().Select(p => p.TryGetProperty("text", out var t) ? t.GetString() : ""))
        : "";

    private static string Json(bool value) => value ? "true" : "false";

    /// <summary>The OpenAI SDK's ChatClient, the weather tool offered on every request.</summary>
    private static Ask ChatSdk(HttpClient http, ProxyHost proxy)
    {
        var chat = new ChatClient("gpt-4o-mini", new ApiKeyCredential(ApiKey), new OpenAIClientOptions
        {
            Endpoint = new Uri(proxy.ProxyUrl, "/v1"),
            Transport = new HttpClientPipelineTransport(http),
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        });
        var options = new ChatCompletionOptions
        {
            Tools = { ChatTool.CreateFunctionTool("get_weather", "Get the weather for a location", BinaryData.FromString(Parameters)) },
        };
        return async (question, stream) =>
        {
            if (!stream)
            {
                ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage(question)], options);
                return new Reply(string.Concat(completion.Content.Select(p => p.Text)), completion.ToolCalls.Count > 0 ? completion.ToolCalls[0].FunctionName : null);
            }

            var text = new StringBuilder();
            string? call = null;
            await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(question)], options))
            {
                text.AppendJoin("", update.ContentUpdate.Select(p => p.Text));
                call ??= update.ToolCallUpdates.FirstOrDefault(u => u.FunctionName is not null)?.FunctionName;
            }

            return new Reply(text.ToString(), call);
        };
    }

    /// <summary>The OpenAI SDK's ResponsesClient, the weather tool offered on every request.</summary>
    private static Ask ResponsesSdk(HttpClient http, ProxyHost proxy)
    {
        var client = new ResponsesClient(new ApiKeyCredential(ApiKey), new ResponsesClientOptions
        {
            Endpoint = new Uri(proxy.ProxyUrl, "/v1"),
            Transport = new HttpClientPipelineTransport(http),
            RetryPolicy = new ClientRetryPolicy(0),
        });
        var tool = ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(Parameters), strictModeEnabled: false, "Get the weather for a location");
        return async (question, stream) =>
        {
            var options = new CreateResponseOptions { Model = "gpt-4o-mini", InputItems = { ResponseItem.CreateUserMessageItem(question) }, Tools = { tool } };
            if (!stream)
            {
                ResponseResult result = await client.CreateResponseAsync(options);
                return new Reply(result.GetOutputText(), result.OutputItems.OfType<FunctionCallResponseItem>().FirstOrDefault()?.FunctionName);
            }

            options.StreamingEnabled = true;
            var text = new StringBuilder();
            string? call = null;
            await foreach (var update in await client.CreateResponseStreamingAsync(options))
            {
                switch (update)
                {
                    case StreamingResponseOutputTextDeltaUpdate delta:
                        text.Append(delta.Delta);
                        break;
                    case StreamingResponseOutputItemDoneUpdate { Item: FunctionCallResponseItem done }:
                        call ??= done.FunctionName;
                        break;
                }
            }

            return new Reply(text.ToString(), call);
        };
    }

    /// <summary>The Anthropic SDK's client (its key in <c>x-api-key</c>), the weather tool offered on every request.</summary>
    private static Ask AnthropicSdk(HttpClient http, ProxyHost proxy)
    {
        var client = new AnthropicClient(new Anthropic.Core.ClientOptions
        {
            ApiKey = ApiKey,
            BaseUrl = proxy.ProxyUrl.ToString().TrimEnd('/'),
            HttpClient = http,
            MaxRetries = 0,
        });
        var tool = new AnthropicTool
        {
            Name = "get_weather",
            Description = "Get the weather for a location",
            InputSchema = new InputSchema
            {
                Properties = new Dictionary<string, JsonElement> { ["location"] = JsonSerializer.SerializeToElement(new { type = "string" }) },
                Required = ["location"],
            },
        };
        return async (question, stream) =>
        {
            var parameters = new MessageCreateParams
            {
                Model = "claude-sonnet-4-5",
                MaxTokens = 256,
                Messages = [new UserMessageParam(question)],
                Tools = [tool],
            };
            if (!stream)
            {
                var answer = await client.Messages.Create(parameters);
                return new Reply(
                    string.Concat(answer.Content.Select(b => b.TryPickText(out var text) ? text.Text : "")),
                    answer.Content.Select(b => b.TryPickToolUse(out var use) ? use.Name : null).FirstOrDefault(n => n is not null));
            }

            var streamed = new StringBuilder();
            string? call = null;
            await foreach (var update in client.Messages.CreateStreaming(parameters))
            {
                if (update.TryPickContentBlockDelta(out var delta) && delta.Delta.TryPickText(out var text))
                {
                    streamed.Append(text.Text);
                }
                else if (update.TryPickContentBlockStart(out var start) && start.ContentBlock.TryPickToolUse(out var use))
                {
                    call ??= use.Name;
                }
            }

            return new Reply(streamed.ToString(), call);
        };
    }

    /// <summary>OllamaSharp, with the API key a keyed Ollama gateway takes (the session's tenant), the weather tool offered on every request.</summary>
    private static Ask OllamaSdk(HttpClient http, ProxyHost proxy)
    {
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
        var ollama = new OllamaApiClient(http, "llama3.2");
        var tool = new OllamaTool
        {
            Function = new OllamaSharp.Models.Chat.Function
            {
                Name = "get_weather",
                Description = "Get the weather for a location",
                Parameters = new OllamaSharp.Models.Chat.Parameters
                {
                    Properties = new Dictionary<string, OllamaSharp.Models.Chat.Property> { ["location"] = new() { Type = "string" } },
                    Required = ["location"],
                },
            },
        };
        return async (question, stream) =>
        {
            var request = new OllamaSharp.Models.Chat.ChatRequest
            {
                Model = "llama3.2",
                Stream = stream,
                Messages = [new OllamaMessage(OllamaSharp.Models.Chat.ChatRole.User, question)],
                Tools = [tool],
            };
            var text = new StringBuilder();
            string? call = null;
            await foreach (var response in ollama.ChatAsync(request))
            {
                text.Append(response?.Message?.Content);
                call ??= response?.Message?.ToolCalls?.FirstOrDefault()?.Function?.Name;
            }

            return new Reply(text.ToString(), call);
        };
    }

    /// <summary>One new turn through an SDK: the answer's text, and the name of the first tool call it saw.</summary>
    private delegate Task<Reply> Ask(string question, bool stream);

    private readonly record struct Reply(string Text, string? Call);

    /// <summary>
    /// One API: its fixture folder and metric label, path, array of messages, the fixtures of a tool-call answer and a text
    /// answer (and whether the tool-call answer has text before the call), its provider rules, its SDK, and a new turn
    /// in it as raw JSON.
    /// </summary>
    private sealed record Api(
        string Folder,
        string Label,
        string Path,
        string Array,
        (string Stream, string Json) Tool,
        (string Stream, string Json) Text,
        bool CallHasText,
        Func<JsonElement, string?> Rules,
        Func<HttpClient, ProxyHost, Ask> Sdk,
        Func<string, bool, string> NewTurn);
}
