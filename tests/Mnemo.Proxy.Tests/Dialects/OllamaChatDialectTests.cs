using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Dialects;

public sealed class OllamaChatDialectTests
{
    private const string Png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

    private static readonly OllamaChatDialect s_dialect = new();

    private static readonly string[] s_stored =
    [
        """{"role":"user","content":"one"},{"role":"assistant","content":"1"}""",
        """{"role":"user","content":"two"},{"role":"assistant","content":"2"}""",
    ];

    [TestCase("""{"model":"llama3.2","messages":[{"role":"system","content":"s"},{"role":"user","content":"new"}]}""", "system,user:one,assistant,user:two,assistant,user:new")]
    [TestCase("""{"model":"llama3.2","messages":[{"role":"user","content":"new","images":["aGk="]}],"stream":false}""", "user:one,assistant,user:two,assistant,user:new")]
    [TestCase("""{"messages":[{"role":"system","content":"s"}],"options":{"temperature":0}}""", "system,user:one,assistant,user:two,assistant")]
    [TestCase("{\n  \"model\": \"llama3.2\",\n  \"messages\": [\n    { \"role\": \"system\", \"content\": \"s\" },\n    { \"content\": \"new\", \"role\": \"user\" }\n  ]\n}", "system,user:one,assistant,user:two,assistant,user:new")]
    public void Splice_PutsHistoryAfterLeadingSystemMessages_AndKeepsValidJson(string body, string expected)
    {
        using var document = JsonDocument.Parse(Splice(body, s_stored));
        var roles = document.RootElement.GetProperty("messages").EnumerateArray().Select(m =>
        {
            var role = m.GetProperty("role").GetString()!;
            return role == "user" ? $"user:{m.GetProperty("content").GetString()}" : role;
        });
        Assert.That(string.Join(",", roles), Is.EqualTo(expected));
    }

    [Test]
    public void Splice_WithNoHistory_LeavesTheBodyAsItWas()
    {
        const string body = """{"model":"llama3.2","messages":[{"role":"user","content":"new"}]}""";
        Assert.That(Splice(body, []), Is.EqualTo(body));
    }

    [Test]
    public void ParseRequest_Inject_TakesEveryNonSystemMessageAsInput_AndStreamIsUnsetWhenAbsent()
    {
        const string body = """{"model":"llama3.2","messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{}}}]},{"role":"tool","tool_name":"f","content":"c"}]}""";
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, plan), Is.EqualTo(ParseResult.Splice));
        Assert.That(Inputs(body, plan), Is.EqualTo(new[] { "user", "assistant", "tool" }));
        Assert.That(plan.Stream, Is.Null, "Ollama streams when the request says nothing");
        Assert.That((plan.Start, plan.End), Is.EqualTo((body.IndexOf(",{\"role\":\"user\"", StringComparison.Ordinal), body.IndexOf(",{\"role\":\"user\"", StringComparison.Ordinal))),
            "history is inserted right after the system message");
        Assert.That(plan.Open, Is.EqualTo(SplicePlan.Comma));
    }

    [TestCase("""{"messages":[{"role":"user","content":"a"}],"stream":false}""", false)]
    [TestCase("""{"messages":[{"role":"user","content":"a"}],"stream":true}""", true)]
    public void ParseRequest_StreamValue_IsRead(string body, bool expected)
    {
        var plan = new SplicePlan();
        s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, plan);
        Assert.That(plan.Stream, Is.EqualTo(expected));
    }

    [Test]
    public void ParseRequest_Record_TakesOnlyWhatFollowsTheLastAssistantMessage()
    {
        const string body = """{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"tool","tool_name":"f","content":"c"},{"role":"user","content":"d"}]}""";
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: true, plan), Is.EqualTo(ParseResult.Splice));
        Assert.That(Inputs(body, plan), Is.EqualTo(new[] { "tool", "user" }));
    }

    [TestCase("""{"model":"llama3.2","messages":[]}""")]
    [TestCase("""{"model":"llama3.2","messages":[],"keep_alive":0}""")]
    public void ParseRequest_EmptyMessages_IsAModelLoadAndPassesThrough(string body)
    {
        var result = s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, new SplicePlan());
        Assert.That(result, Is.EqualTo(ParseResult.PassThrough));
    }

    [TestCase("""{"messages":[]} x""")]
    [TestCase("""{"messages":[{"role":"user","content":"a"}]""")]
    [TestCase("""{"messages":["hello"]}""")]
    [TestCase("""{"messages":[{"content":"a"}]}""")]
    [TestCase("""{"messages":{"role":"user"}}""")]
    [TestCase("""{"model":"llama3.2"}""")]
    [TestCase("""[{"role":"user","content":"a"}]""")]
    public void ParseRequest_Malformed_ReturnsAnError(string body)
    {
        var result = s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, new SplicePlan());
        Assert.That(result.Outcome, Is.EqualTo(ParseOutcome.Invalid));
        Assert.That(result.Error, Is.Not.Empty);
    }

    [TestCase("stream.ndjson", """{"role":"assistant","content":"The sky is blue due to Rayleigh scattering."}""")]
    [TestCase("stream-thinking.ndjson", """{"role":"assistant","content":"17 × 23 = 391.","thinking":"Okay, let's compute 17 × 23. 17 × 20 = 340 and 17 × 3 = 51, so 340 + 51 = 391."}""")]
    [TestCase("stream-tool-calls.ndjson", """{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Tokyo"}}}]}""")]
    [TestCase("stream-tool-calls-ids.ndjson", """{"role":"assistant","content":"","tool_calls":[{"id":"call_k3x9q2ab","function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}}}]}""")]
    public void StreamParser_DocumentedStreams_GiveTheSameAnswerHoweverTheBytesAreCut(string fixture, string expected)
    {
        var bytes = File.ReadAllBytes(FakeUpstream.FixturePath("OllamaChat", fixture));
        foreach (var chunk in new[] { bytes.Length, 1, 7, 64 })
        {
            using var parser = Parse("application/x-ndjson", bytes, chunk);
            Assert.That(parser.Failure, Is.Null, $"chunks of {chunk}");
            Assert.That(parser.Completed, Is.True, $"chunks of {chunk}");
            Assert.That(Answer(parser), Is.EqualTo(expected), $"chunks of {chunk}");
        }
    }

    [TestCase("stream.ndjson", 26, 282)]
    [TestCase("stream-thinking.ndjson", 18, 112)]
    [TestCase("stream-tool-calls.ndjson", 169, 15)]
    public void StreamParser_Usage_IsReadFromTheDoneObject(string fixture, long input, long output)
    {
        using var parser = Parse("application/x-ndjson", File.ReadAllBytes(FakeUpstream.FixturePath("OllamaChat", fixture)));
        Assert.That(parser.Usage, Is.EqualTo(new TokenUsage(input, output, -1, -1)));
    }

    [Test]
    public void StreamParser_EscapedFragments_AreKeptAsSentOnTheWire()
    {
        var stream = """
            {"message":{"role":"assistant","content":"caf\u00e9 \"q\"","thinking":"a\nb"},"done":false}
            {"message":{"role":"assistant","content":" \/ \ud83d\ude00"},"done":false}
            {"message":{"role":"assistant","content":""},"done":true,"prompt_eval_count":3,"eval_count":4}
            """.ReplaceLineEndings("\r\n");
        using var parser = Parse("application/x-ndjson", Encoding.UTF8.GetBytes(stream), chunk: 3);
        Assert.That(parser.Completed, Is.True);
        Assert.That(Answer(parser), Is.EqualTo("""{"role":"assistant","content":"caf\u00e9 \"q\" \/ \ud83d\ude00","thinking":"a\nb"}"""));
        using var document = JsonDocument.Parse(Answer(parser));
        Assert.That(document.RootElement.GetProperty("content").GetString(), Is.EqualTo("café \"q\" / 😀"));
    }

    [Test]
    public void StreamParser_ToolCallsOnSeveralLines_AreKeptInOrder()
    {
        var stream = """
            {"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{"x":1}}}]},"done":false}
            {"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"b","arguments":{}}},{"function":{"name":"c","arguments":{"y":[1,2]}}}]},"done":false}
            {"message":{"role":"assistant","content":""},"done":true}

            """.ReplaceLineEndings("\n");
        using var parser = Parse("application/x-ndjson", Encoding.UTF8.GetBytes(stream), chunk: 5);
        Assert.That(Answer(parser), Is.EqualTo(
            """{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{"x":1}}},{"function":{"name":"b","arguments":{}}},{"function":{"name":"c","arguments":{"y":[1,2]}}}]}"""));
        Assert.That(parser.Usage, Is.EqualTo(TokenUsage.Unknown), "no counts were sent");
    }

    [Test]
    public void StreamParser_CutBeforeTheDoneObject_IsNotComplete()
    {
        var lines = FakeUpstream.SplitLines(File.ReadAllBytes(FakeUpstream.FixturePath("OllamaChat", "stream.ndjson")));
        using var parser = Parse("application/x-ndjson", lines.Take(lines.Count - 1).SelectMany(l => l).ToArray());
        Assert.That(parser.Failure, Is.Null);
        Assert.That(parser.Completed, Is.False);
    }

    [Test]
    public void StreamParser_DocumentedMidStreamError_MakesTheAnswerUnrecordable()
    {
        using var parser = Parse("application/x-ndjson", File.ReadAllBytes(FakeUpstream.FixturePath("OllamaChat", "stream-error.ndjson")), chunk: 7);
        Assert.That(parser.Failure, Is.Not.Null);
        Assert.That(parser.Failure, Does.Not.Contain("an error was encountered"), "the failure is a fixed phrase, never upstream text");
        Assert.That(parser.Completed, Is.False);
    }

    [Test]
    public void StreamParser_ErrorAfterTheDoneObject_StillFails()
    {
        using var parser = Parse("application/x-ndjson", """
            {"message":{"role":"assistant","content":"a"},"done":true}
            {"error":"late"}
            """u8.ToArray());
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [TestCase("not json\n")]
    [TestCase("[1,2]\n")]
    [TestCase("{\"message\":{\"content\":\"a\"},\"done\":tru\n")]
    public void StreamParser_LineThatIsNotAnObject_Fails(string stream)
    {
        using var parser = Parse("application/x-ndjson", Encoding.UTF8.GetBytes(stream));
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [TestCase("load")]
    [TestCase("unload")]
    public void StreamParser_ModelLoadAnswer_IsNotRecorded(string reason)
    {
        using var parser = Parse("application/x-ndjson", Encoding.UTF8.GetBytes(
            $$"""{"model":"llama3.2","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":""},"done_reason":"{{reason}}","done":true}""" + "\n"));
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [TestCase("chat.json", """{"role":"assistant","content":"Hello! How can I help you today?"}""", 11, 18)]
    [TestCase("chat-tool-calls.json", """{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_current_weather","arguments":{"format":"celsius","location":"Paris, FR"}}}]}""", 122, 33)]
    public void JsonParser_DocumentedResponses_GiveTheAnswerAndUsage(string fixture, string expected, long input, long output)
    {
        var bytes = File.ReadAllBytes(FakeUpstream.FixturePath("OllamaChat", fixture));
        using var parser = Parse("application/json", bytes, chunk: 5);
        Assert.That(parser.Failure, Is.Null);
        Assert.That(parser.Completed, Is.True);
        Assert.That(Answer(parser), Is.EqualTo(expected));
        Assert.That(parser.Usage, Is.EqualTo(new TokenUsage(input, output, -1, -1)));
        Assert.That(parser.OutputBytes, Is.GreaterThan(0));
    }

    [Test]
    public void JsonParser_PrettyPrintedAnswer_IsRead()
    {
        var body = "{\n  \"message\": {\n    \"role\": \"assistant\",\n    \"thinking\": \"hm\",\n    \"content\": \"Hi\"\n  },\n  \"done\": true\n}\n";
        using var parser = Parse("application/json", Encoding.UTF8.GetBytes(body));
        Assert.That(Answer(parser), Is.EqualTo("""{"role":"assistant","content":"Hi","thinking":"hm"}"""));
    }

    [Test]
    public void JsonParser_ErrorBody_IsNotRecordable()
    {
        using var parser = Parse("application/json", File.ReadAllBytes(FakeUpstream.FixturePath("OllamaChat", "error-404.json")));
        Assert.That(parser.Failure, Is.Not.Null);
        Assert.That(parser.Completed, Is.False);
    }

    [TestCase("""{"message":{"role":"assistant","content":"Hi"},"done":false}""")]
    [TestCase("""{"message":{"role":"assistant","content":"Hi"}}""")]
    [TestCase("""{"message":{"role":"assistant","content":""},"done_reason":"load","done":true}""")]
    [TestCase("""{"message":{"role":"assistant","content":"Hi"},"done":true""")]
    [TestCase("\"done\"")]
    public void JsonParser_UnfinishedOrBrokenAnswer_IsNotRecordable(string body)
    {
        using var parser = Parse("application/json", Encoding.UTF8.GetBytes(body));
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [Test]
    public void CreateResponseParser_KnowsNdjsonAndJsonOnly()
    {
        Assert.That(s_dialect.CreateResponseParser("application/x-ndjson"), Is.InstanceOf<OllamaStreamParser>());
        Assert.That(s_dialect.CreateResponseParser("application/json"), Is.InstanceOf<OllamaJsonParser>());
        Assert.That(s_dialect.CreateResponseParser("text/event-stream"), Is.Null);
        Assert.That(s_dialect.CreateResponseParser("text/plain"), Is.Null);
        Assert.That(s_dialect.CreateResponseParser(null), Is.Null);
    }

    [Test]
    public async Task WriteErrorAsync_WritesOllamasBareErrorObject()
    {
        var context = new DefaultHttpContext();
        using var body = new MemoryStream();
        context.Response.Body = body;
        await s_dialect.WriteErrorAsync(context.Response, 400, "invalid_session_id", "The X-Session-Id header is \"bad\".", CancellationToken.None);

        Assert.That(context.Response.StatusCode, Is.EqualTo(400));
        Assert.That(context.Response.ContentType, Is.EqualTo("application/json"));
        using var document = JsonDocument.Parse(body.ToArray());
        Assert.That(document.RootElement.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "error" }));
        Assert.That(document.RootElement.GetProperty("error").GetString(), Is.EqualTo("The X-Session-Id header is \"bad\"."));
    }

    [Test]
    public void WriteTurnMessages_StoresTheInputsAsSentThenTheAnswer()
    {
        var body = $$"""{"model":"llava","messages":[{"role":"system","content":"s"},{"role":"user","content":"What is this?","images":["{{Png}}"]}]}""";
        var bytes = Encoding.UTF8.GetBytes(body);
        var plan = new SplicePlan();
        s_dialect.ParseRequest(bytes, fullHistory: false, plan);
        using var parser = Parse("application/x-ndjson", File.ReadAllBytes(FakeUpstream.FixturePath("OllamaChat", "stream-thinking.ndjson")));

        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            s_dialect.WriteTurnMessages(writer, bytes, plan, parser);
            writer.WriteEndArray();
        }

        var stored = Encoding.UTF8.GetString(buffer.WrittenSpan);
        Assert.That(stored, Is.EqualTo(
            $$"""[{"role":"user","content":"What is this?","images":["{{Png}}"]},{"role":"assistant","content":"17 × 23 = 391.","thinking":"Okay, let's compute 17 × 23. 17 × 20 = 340 and 17 × 3 = 51, so 340 + 51 = 391."}]"""));
    }

    [Test]
    public void RoundTrip_OllamaThroughTheModel_KeepsTextImagesToolCallsAndResultsWithIds()
    {
        var stored = """
            [{"role":"user","content":"Weather here?","images":["PNG"]},
             {"role":"assistant","content":"Let me look.","thinking":"need the tool","tool_calls":[{"id":"call_a","function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo","days":[1,2]}}}]},
             {"role":"tool","tool_call_id":"call_a","tool_name":"get_weather","content":"11 degrees"},
             {"role":"assistant","content":"It is 11 degrees."}]
            """.Replace("PNG", Png, StringComparison.Ordinal);
        var drops = new Drops();
        var messages = Read(s_dialect, stored, drops);

        Assert.That(messages.Select(m => m.Role), Is.EqualTo(new[] { ChatRole.User, ChatRole.Assistant, ChatRole.User, ChatRole.Assistant }));
        Assert.That(messages[0].Parts, Is.EqualTo(new ChatPart[] { new TextPart("Weather here?"), new ImagePart("image/png", Png, null) }));
        var call = (ToolCallPart)messages[1].Parts[1];
        Assert.That((call.Id, call.Name), Is.EqualTo(("call_a", "get_weather")));
        Assert.That(JsonDocument.Parse(call.Arguments).RootElement.GetProperty("days").GetArrayLength(), Is.EqualTo(2));
        Assert.That(messages[2].Parts, Is.EqualTo(new ChatPart[] { new ToolResultPart("call_a", "get_weather", "11 degrees", false) }));
        Assert.That(drops.Kinds, Is.EqualTo(new[] { DropKind.Thinking }));

        var written = Write(s_dialect, messages, drops);
        Assert.That(written, Is.EqualTo(
            """[{"role":"user","content":"Weather here?","images":["PNG"]},{"role":"assistant","content":"Let me look.","tool_calls":[{"id":"call_a","function":{"name":"get_weather","arguments":{"city":"Tokyo","days":[1,2]}}}]},{"role":"tool","content":"11 degrees","tool_name":"get_weather","tool_call_id":"call_a"},{"role":"assistant","content":"It is 11 degrees."}]""".Replace("PNG", Png, StringComparison.Ordinal)));
        Assert.That(drops.Kinds, Is.EqualTo(new[] { DropKind.Thinking }), "writing Ollama back loses nothing more");
    }

    [Test]
    public void RoundTrip_IdlessCallsAndResults_ArePairedInOrderByTheConverter()
    {
        // Ollama before v0.12.10: no ids anywhere; two calls of one tool answered in order.
        var stored = """
            [{"role":"user","content":"Tokyo and Paris?"},
             {"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Tokyo"}}},{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},
             {"role":"tool","tool_name":"get_weather","content":"11"},
             {"role":"tool","tool_name":"get_weather","content":"18"}]
            """;
        var converted = Convert(s_dialect, DialectId.OllamaChat, stored, new OpenAIChatDialect());

        using var document = JsonDocument.Parse(converted);
        var messages = document.RootElement;
        Assert.That(messages.GetArrayLength(), Is.EqualTo(4));
        Assert.That(messages[1].GetProperty("content").ValueKind, Is.EqualTo(JsonValueKind.Null), "no empty text from Ollama's empty content");
        var calls = messages[1].GetProperty("tool_calls");
        var ids = calls.EnumerateArray().Select(c => c.GetProperty("id").GetString()).ToArray();
        Assert.That(ids, Is.Unique.And.All.Not.Null);
        Assert.That(calls[0].GetProperty("function").GetProperty("arguments").GetString(), Is.EqualTo("""{"city":"Tokyo"}"""));
        Assert.That((messages[2].GetProperty("tool_call_id").GetString(), messages[2].GetProperty("content").GetString()), Is.EqualTo((ids[0], "11")));
        Assert.That((messages[3].GetProperty("tool_call_id").GetString(), messages[3].GetProperty("content").GetString()), Is.EqualTo((ids[1], "18")));
    }

    [Test]
    public void OpenAIChatThroughTheModel_GivesAValidOllamaRequest()
    {
        var stored = """
            [{"role":"user","content":[{"type":"text","text":"Compare "},{"type":"image_url","image_url":{"url":"data:image/png;base64,PNG"}},{"type":"text","text":"with this"},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]},
             {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"cat\"}"}},{"id":"call_2","type":"function","function":{"name":"broken","arguments":"{\"q\":"}}]},
             {"role":"tool","tool_call_id":"call_1","content":"a cat"},
             {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"error"}]},
             {"role":"user","content":"so?"},
             {"role":"assistant","content":"Two cats."}]
            """.Replace("PNG", Png, StringComparison.Ordinal);
        var drops = new Drops();
        var messages = Read(new OpenAIChatDialect(), stored, drops);
        ToolIds.Pair(messages);
        using var document = JsonDocument.Parse(Write(s_dialect, messages, drops));
        var written = document.RootElement;

        Assert.That(written.EnumerateArray().Select(m => m.GetProperty("role").GetString()),
            Is.EqualTo(new[] { "user", "assistant", "tool", "tool", "user", "assistant" }));
        foreach (var message in written.EnumerateArray())
        {
            Assert.That(message.GetProperty("content").ValueKind, Is.EqualTo(JsonValueKind.String), "Ollama's content is always a string");
        }

        Assert.That(written[0].GetProperty("content").GetString(), Is.EqualTo("Compare with this"));
        Assert.That(written[0].GetProperty("images").EnumerateArray().Select(i => i.GetString()), Is.EqualTo(new[] { Png }), "only base64 images; the URL cannot be carried");
        var calls = written[1].GetProperty("tool_calls");
        Assert.That(calls[0].GetProperty("id").GetString(), Is.EqualTo("call_1"));
        Assert.That(calls[0].GetProperty("function").GetProperty("arguments").GetProperty("q").GetString(), Is.EqualTo("cat"), "arguments are an object");
        Assert.That(calls[1].GetProperty("function").GetProperty("arguments").ValueKind, Is.EqualTo(JsonValueKind.Object));
        Assert.That(calls[1].GetProperty("function").GetProperty("arguments").EnumerateObject(), Is.Empty, "invalid arguments become {}");
        Assert.That((written[2].GetProperty("tool_call_id").GetString(), written[2].GetProperty("tool_name").GetString(), written[2].GetProperty("content").GetString()),
            Is.EqualTo(("call_1", "lookup", "a cat")));
        Assert.That((written[3].GetProperty("tool_call_id").GetString(), written[3].GetProperty("tool_name").GetString(), written[3].GetProperty("content").GetString()),
            Is.EqualTo(("call_2", "broken", "error")));
        Assert.That(written[4].GetProperty("content").GetString(), Is.EqualTo("so?"));
        Assert.That(written[4].TryGetProperty("images", out _), Is.False);
        Assert.That(drops.Kinds, Is.EquivalentTo(new[] { DropKind.Image, DropKind.Other }), "the URL image (written) and the cut arguments (read by openai-chat, now replaced by {})");
    }

    [Test]
    public void WriteMessages_UserWithOnlyAUrlImage_WritesNoEmptyMessage()
    {
        var drops = new Drops();
        var messages = new List<ChatMessage> { new ChatMessage(ChatRole.User).Add(new ImagePart(null, null, "https://example.com/a.png")) };
        Assert.That(Write(s_dialect, messages, drops), Is.EqualTo("[]"));
        Assert.That(drops.Kinds, Is.EqualTo(new[] { DropKind.Image }));
    }

    [TestCase(Png, "image/png")]
    [TestCase("/9j/4AAQSkZJRgABAQ==", "image/jpeg")]
    [TestCase("R0lGODlhAQABAAAAACw=", "image/gif")]
    [TestCase("UklGRhAgMEBXRUJQVlA4IA==", "image/webp")]
    [TestCase("UklGRhAgMEBBVkkgTElTVA==", null)]
    [TestCase("aGVsbG8=", null)]
    public void ReadMessages_ImageMediaType_IsSniffedFromTheData(string data, string? expected)
    {
        var messages = Read(s_dialect, $$"""[{"role":"user","content":"","images":["{{data}}"]}]""", new Drops());
        Assert.That(messages[0].Parts, Is.EqualTo(new ChatPart[] { new ImagePart(expected, data, null) }));
    }

    [Test]
    public void Converter_OllamaTurnIntoOllama_IsTheSameMessages()
    {
        var stored = """[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello","thinking":"greet"}]""";
        var converted = Convert(s_dialect, DialectId.OllamaChat, stored, s_dialect);
        Assert.That(converted, Is.EqualTo("""[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]"""));
    }

    private static List<ChatMessage> Read(Dialect dialect, string array, IDropSink drops) => DialectHarness.Read(dialect, array, drops);

    private static string Write(Dialect dialect, IReadOnlyList<ChatMessage> messages, IDropSink drops) => DialectHarness.Write(dialect, messages, drops);

    /// <summary>Through the real converter: the stored array's elements, as one turn of <paramref name="from"/>, into <paramref name="target"/>'s array.</summary>
    private static string Convert(Dialect source, DialectId from, string array, Dialect target)
    {
        Assert.That(source.Id, Is.EqualTo(from));
        using var document = JsonDocument.Parse(array);
        var elements = string.Join(",", document.RootElement.EnumerateArray().Select(e => e.GetRawText()));
        var converter = new Converter(new DialectRegistry(), new MnemoMetrics());
        var bytes = converter.Convert(target, [new ForeignTurn(from, Encoding.UTF8.GetBytes(elements), "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"u8.ToArray())]);
        return "[" + Encoding.UTF8.GetString(bytes) + "]";
    }

    private static ResponseParser Parse(string mediaType, byte[] bytes, int chunk = 1 << 20) => DialectHarness.Parse(s_dialect, mediaType, bytes, chunk);

    private static string Answer(ResponseParser parser) => DialectHarness.Answer(parser);

    private static string[] Inputs(string body, SplicePlan plan) =>
        plan.Inputs.Select(r => JsonDocument.Parse(body[r]).RootElement.GetProperty("role").GetString()!).ToArray();

    private static string Splice(string body, string[] storedTurns) => DialectHarness.Splice(s_dialect, body, storedTurns);

    private sealed class Drops : IDropSink
    {
        public List<DropKind> Kinds { get; } = [];

        public void Dropped(DropKind kind) => Kinds.Add(kind);
    }
}
