using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Dialects;

public sealed class OpenAIResponsesDialectTests
{
    private const string Fixtures = "OpenAIResponses";
    private const string StreamAnswer = """{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hello! How can I assist you today?"}]}""";
    private const string StreamCall = """{"type":"function_call","call_id":"call_0UFGPwrziw5rbinYp7rthrTb","name":"get_weather_at_location","arguments":"{\"location\":\"San Francisco, CA\"}"}""";

    private static readonly OpenAIResponsesDialect s_dialect = new();

    private static readonly string[] s_stored =
    [
        """{"role":"user","content":"one"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"1"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}""",
        """{"type":"function_call_output","call_id":"c","output":"two"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"2"}]}""",
    ];

    [TestCase("""{"input":[{"role":"system","content":"s"},{"role":"user","content":"new"}]}""", "system,user:one,assistant,function_call,output:two,assistant,user:new")]
    [TestCase("""{"input":[{"role":"developer","content":"d"},{"type":"message","role":"system","content":"s"},{"role":"user","content":"new"}]}""", "developer,system,user:one,assistant,function_call,output:two,assistant,user:new")]
    [TestCase("""{"input":[{"role":"user","content":"new"}]}""", "user:one,assistant,function_call,output:two,assistant,user:new")]
    [TestCase("""{"input":[{"type":"function_call_output","call_id":"x","output":"new"}]}""", "user:one,assistant,function_call,output:two,assistant,output:new")]
    [TestCase("""{"input":[{"role":"system","content":"s"}]}""", "system,user:one,assistant,function_call,output:two,assistant")]
    [TestCase("""{"input":[]}""", "user:one,assistant,function_call,output:two,assistant")]
    [TestCase("""{"instructions":"be brief","input":"new"}""", "user:one,assistant,function_call,output:two,assistant,user:new")]
    [TestCase("{\n  \"model\": \"m\",\n  \"input\" :  \"caf\\u00e9 \\\"new\\\"\"  ,\n  \"stream\": true\n}", "user:one,assistant,function_call,output:two,assistant,user:café \"new\"")]
    [TestCase("""{"inp\u0075t":[{"role":"system","content":"s"},{"role":"user","content":"new"}]}""", "system,user:one,assistant,function_call,output:two,assistant,user:new")]
    public void Splice_PutsHistoryFirstInInputAfterLeadingSystemMessages_AndKeepsValidJson(string body, string expected)
    {
        var spliced = Splice(body, s_stored);

        using var document = JsonDocument.Parse(spliced);
        var input = document.RootElement.EnumerateObject().Single(p => p.Value.ValueKind == JsonValueKind.Array).Value;
        var items = input.EnumerateArray().Select(m =>
        {
            if (!m.TryGetProperty("role", out var role))
            {
                var type = m.GetProperty("type").GetString();
                return type == "function_call_output" ? $"output:{m.GetProperty("output").GetString()}" : type!;
            }

            return role.GetString() == "user" ? $"user:{m.GetProperty("content").GetString()}" : role.GetString()!;
        });
        Assert.That(string.Join(",", items), Is.EqualTo(expected));
    }

    [Test]
    public void Splice_StringInput_KeepsEverythingElseByteForByte()
    {
        const string body = """{"model":"m","instructions":"be brief","input": "new" ,"stream":false}""";
        var spliced = Splice(body, s_stored);
        Assert.That(spliced, Is.EqualTo(
            """{"model":"m","instructions":"be brief","input": [""" + string.Join(",", s_stored) + """,{"role":"user","content":"new"}] ,"stream":false}"""));
        AssertValidInput(JsonDocument.Parse(spliced).RootElement.GetProperty("input"));
    }

    [TestCase("""{"input":[{"role":"user","content":"new"}]}""")]
    [TestCase("""{"input":"new"}""")]
    public void Splice_WithNoHistory_LeavesTheBodyAsItWas(string body)
    {
        Assert.That(Splice(body, []), Is.EqualTo(body));
    }

    [Test]
    public void ParseRequest_Inject_TakesEveryNonSystemItemAsInput_WithOrWithoutRole()
    {
        const string body = """{"input":[{"role":"developer","content":"s"},{"role":"user","content":"a"},{"type":"function_call","call_id":"x","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"x","output":"b"},{"type":"item_reference","id":"msg_1"}],"stream":true}""";
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, plan), Is.EqualTo(ParseResult.Splice));
        Assert.That(Inputs(body, plan), Is.EqualTo(new[] { "user", "function_call", "function_call_output", "item_reference" }));
        Assert.That(plan.Stream, Is.True);
        Assert.That(plan.InputIsText, Is.False);
    }

    [TestCase("""{"type":"message","role":"assistant","content":[{"type":"output_text","text":"b"}]}""")]
    [TestCase("""{"role":"assistant","content":"b"}""")]
    [TestCase("""{"type":"function_call","call_id":"x","name":"f","arguments":"{}"}""")]
    [TestCase("""{"id":"rs_1","type":"reasoning","summary":[]}""")]
    [TestCase("""{"type":"web_search_call","id":"ws_1","status":"completed"}""")]
    public void ParseRequest_Record_TakesOnlyWhatFollowsTheLastOutputItem(string output)
    {
        var body = $$"""{"input":[{"role":"system","content":"s"},{"role":"user","content":"a"},{{output}},{"type":"function_call_output","call_id":"x","output":"c"},{"role":"user","content":"d"}]}""";
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: true, plan), Is.EqualTo(ParseResult.Splice));
        Assert.That(Inputs(body, plan), Is.EqualTo(new[] { "function_call_output", "user" }));
    }

    [Test]
    public void ParseRequest_StringInput_IsOneTextInput()
    {
        const string body = """{"input":"hi \"there\"","stream":false}""";
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, plan), Is.EqualTo(ParseResult.Splice));
        Assert.That(plan.InputIsText, Is.True);
        Assert.That(plan.Inputs.Select(r => body[r]), Is.EqualTo(new[] { "\"hi \\\"there\\\"\"" }));
        Assert.That(plan.Stream, Is.False);
    }

    [TestCase("""{"previous_response_id":"resp_123","input":[{"role":"user","content":"a"}]}""", "{\"role\":\"user\",\"content\":\"a\"}")]
    [TestCase("""{"input":"a","previous_response_id":"resp_123"}""", "\"a\"")]
    [TestCase("""{"conversation":"conv_123","input":"a"}""", "\"a\"")]
    [TestCase("""{"conversation":{"id":"conv_123"},"input":[{"role":"user","content":"a"}]}""", "{\"role\":\"user\",\"content\":\"a\"}")]
    [TestCase("""{"previous_response_id":"resp_123","input":[{"type":"function_call_output","call_id":"c1","output":"x"}]}""", "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"x\"}")]
    public void ParseRequest_ConversationKeptByTheProvider_IsMarkedProviderHeld_WithItsItemsAsTheTurn(string body, string input)
    {
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, plan), Is.EqualTo(ParseResult.Splice));
        Assert.That(plan.ProviderHeld, Is.True, "nothing is injected: the provider holds the conversation");
        Assert.That(plan.Inputs.Select(r => body[r]), Is.EqualTo(new[] { input }), "what it adds is stored");
    }

    [Test]
    public void ParseRequest_ConversationKeptByTheProvider_WithoutInput_PassesThrough()
    {
        var result = s_dialect.ParseRequest("""{"previous_response_id":"resp_123"}"""u8, fullHistory: false, new SplicePlan());
        Assert.That(result, Is.EqualTo(ParseResult.PassThrough));
    }

    [Test]
    public void ParseRequest_ConversationKeptByTheProvider_WithMalformedInput_IsRejectedLikeAnyRequest()
    {
        var result = s_dialect.ParseRequest("""{"previous_response_id":"resp_123","input":[1]}"""u8, fullHistory: false, new SplicePlan());
        Assert.That(result, Is.EqualTo(ParseResult.Invalid("Each entry of 'input' must be an object.")));
    }

    [TestCase("""{"previous_response_id":null,"input":"a"}""")]
    [TestCase("""{"conversation":null,"input":"a"}""")]
    public void ParseRequest_NullConversationState_IsSpliced(string body)
    {
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, new SplicePlan()), Is.EqualTo(ParseResult.Splice));
    }

    [TestCase("""{"input":[]} x""", "not valid JSON")]
    [TestCase("""{"input":[{"role":"user","content":"a"}]""", "not valid JSON")]
    [TestCase("""[1]""", "JSON object")]
    [TestCase("""{"model":"m"}""", "no 'input'")]
    [TestCase("""{"input":7}""", "string or an array")]
    [TestCase("""{"input":null}""", "string or an array")]
    [TestCase("""{"input":{"role":"user"}}""", "string or an array")]
    [TestCase("""{"input":["hello"]}""", "must be an object")]
    [TestCase("""{"input":[],"input":[]}""", "more than one")]
    public void ParseRequest_Malformed_ReturnsAnError(string body, string message)
    {
        var result = s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, new SplicePlan());
        Assert.That(result.Outcome, Is.EqualTo(ParseOutcome.Invalid));
        Assert.That(result.Error, Does.Contain(message));
    }

    [TestCase("stream.sse", StreamAnswer)]
    [TestCase("stream-function-call.sse", StreamCall)]
    public void StreamParser_RecordedStreams_GiveTheSameAnswerHoweverTheBytesAreCut(string fixture, string expected)
    {
        var bytes = File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, fixture));
        foreach (var chunk in new[] { bytes.Length, 1, 7, 64 })
        {
            using var parser = Parse("text/event-stream", bytes, chunk);
            Assert.That(parser.Failure, Is.Null, $"chunks of {chunk}");
            Assert.That(parser.Completed, Is.True, $"chunks of {chunk}");
            Assert.That(Answer(parser), Is.EqualTo(expected), $"chunks of {chunk}");
        }
    }

    [TestCase("stream.sse", 11, 10, 0)]
    [TestCase("stream-function-call.sse", 74, 20, 0)]
    public void StreamParser_Usage_IsReadFromTheCompletedResponse(string fixture, long input, long output, long cached)
    {
        using var parser = Parse("text/event-stream", File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, fixture)));
        Assert.That(parser.Usage, Is.EqualTo(new TokenUsage(input, output, cached, -1)));
        Assert.That(parser.OutputBytes, Is.GreaterThan(0));
    }

    [Test]
    public void StreamParser_WithoutEventLines_DispatchesOnTheDataType()
    {
        var stream = Encoding.UTF8.GetString(File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, "stream.sse")))
            .Split('\n').Where(line => !line.StartsWith("event:", StringComparison.Ordinal));
        using var parser = Parse("text/event-stream", Encoding.UTF8.GetBytes(string.Join('\n', stream) + "data: [DONE]\n\n"));
        Assert.That(parser.Failure, Is.Null);
        Assert.That(parser.Completed, Is.True);
        Assert.That(Answer(parser), Is.EqualTo(StreamAnswer));
    }

    [Test]
    public void StreamParser_CompletedEventWithTypeLast_IsStillRead()
    {
        var stream = """
            event: response.completed
            data: {"response":{"output":[{"type":"message","content":[{"text":"hi","type":"output_text"}],"role":"assistant"}],"status":"completed"},"type":"response.completed"}


            """.ReplaceLineEndings("\n");
        using var parser = Parse("text/event-stream", Encoding.UTF8.GetBytes(stream));
        Assert.That(parser.Completed, Is.True);
        Assert.That(Answer(parser), Is.EqualTo("""{"type":"message","role":"assistant","content":[{"type":"output_text","text":"hi"}]}"""));
    }

    [TestCase("stream-failed.sse", "failed")]
    [TestCase("stream-incomplete.sse", "incomplete")]
    [TestCase("stream-error.sse", "error event")]
    public void StreamParser_FailedIncompleteOrErrorStream_IsNotRecordable(string fixture, string reason)
    {
        using var parser = Parse("text/event-stream", File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, fixture)), chunk: 64);
        Assert.That(parser.Failure, Does.Contain(reason));
        Assert.That(parser.Completed, Is.False);
    }

    [Test]
    public void StreamParser_ErrorEventThenCompleted_StaysUnrecordable()
    {
        var events = FakeUpstream.SplitEvents(File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, "stream.sse")));
        var error = "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"x\",\"param\":null}\n\n"u8.ToArray();
        using var parser = Parse("text/event-stream", [.. events.Take(5).SelectMany(e => e), .. error, .. events.Skip(5).SelectMany(e => e)]);
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [Test]
    public void StreamParser_CompletedWithAnotherStatus_IsNotRecordable()
    {
        var stream = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"incomplete\",\"output\":[]}}\n\n";
        using var parser = Parse("text/event-stream", Encoding.UTF8.GetBytes(stream));
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [Test]
    public void StreamParser_CutBeforeCompleted_IsNotComplete()
    {
        var events = FakeUpstream.SplitEvents(File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, "stream.sse")));
        using var parser = Parse("text/event-stream", events.Take(events.Count - 1).SelectMany(e => e).ToArray());
        Assert.That(parser.Completed, Is.False);
        Assert.That(parser.OutputBytes, Is.Zero, "deltas are not kept");
    }

    [TestCase("response.json", """{"type":"message","role":"assistant","content":[{"type":"output_text","text":"In a peaceful grove beneath a silver moon, a unicorn named Lumina discovered a hidden pool that reflected the stars. As she dipped her horn into the water, the pool began to shimmer, revealing a pathway to a magical realm of endless night skies. Filled with wonder, Lumina whispered a wish for all who dream to find their own hidden magic, and as she glanced back, her hoofprints sparkled like stardust."}]}""")]
    [TestCase("response-function-call.json", """{"type":"function_call","call_id":"call_unLAR8MvFNptuiZK6K6HCy5k","name":"get_current_weather","arguments":"{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"}""")]
    public void JsonParser_DocumentedResponses_KeepOnlyInputValidFields(string fixture, string expected)
    {
        using var parser = Parse("application/json", File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, fixture)), chunk: 5);
        Assert.That(parser.Failure, Is.Null);
        Assert.That(parser.Completed, Is.True);
        Assert.That(Answer(parser), Is.EqualTo(expected));
    }

    [Test]
    public void JsonParser_ReasoningWithEncryptedContent_IsKeptForReplay_EscapesAsSent()
    {
        var bytes = File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, "response-reasoning.json"));
        using var parser = Parse("application/json", bytes);
        Assert.That(parser.Completed, Is.True);
        var answer = Answer(parser);
        using var items = JsonDocument.Parse("[" + answer + "]");
        using var source = JsonDocument.Parse(bytes);
        var output = source.RootElement.GetProperty("output");

        Assert.That(items.RootElement.GetArrayLength(), Is.EqualTo(2));
        var reasoning = items.RootElement[0];
        Assert.That(reasoning.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "type", "id", "summary", "encrypted_content" }));
        Assert.That(reasoning.GetProperty("id").GetString(), Is.EqualTo(output[0].GetProperty("id").GetString()));
        Assert.That(reasoning.GetProperty("encrypted_content").GetString(), Is.EqualTo(output[0].GetProperty("encrypted_content").GetString()));
        Assert.That(reasoning.GetProperty("summary")[0].GetProperty("text").GetString(), Does.StartWith("**Creating clear instructions**"));
        var message = items.RootElement[1];
        Assert.That(message.GetRawText(), Does.Not.Contain("annotations").And.Not.Contain("logprobs").And.Not.Contain("phase").And.Not.Contain("msg_"));
        Assert.That(message.GetProperty("content")[0].GetProperty("text").GetString(), Does.StartWith("For a tight, leak-resistant burrito:"));
        Assert.That(answer, Does.Contain("\\u2019"), "text is stored as escaped on the wire, not decoded and re-encoded");
        AssertValidInput(items.RootElement);
    }

    [TestCase("response.json", 36, 87, 0)]
    [TestCase("response-function-call.json", 291, 23, -1)]
    [TestCase("response-reasoning.json", 30, 221, 0)]
    public void JsonParser_Usage_IsNormalised(string fixture, long input, long output, long cached)
    {
        using var parser = Parse("application/json", File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, fixture)));
        Assert.That(parser.Usage, Is.EqualTo(new TokenUsage(input, output, cached, -1)));
    }

    [Test]
    public void JsonParser_ReasoningWithoutEncryptedContent_AndHostedToolCalls_AreLeftOut()
    {
        var body = """
            {"status":"completed","output":[
              {"id":"rs_1","type":"reasoning","summary":[{"type":"summary_text","text":"thinking"}]},
              {"id":"ws_1","type":"web_search_call","status":"completed","action":{"type":"search","query":"q"}},
              {"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"a","annotations":[{"type":"url_citation","url":"https://x"}]},{"type":"refusal","refusal":"no"}]},
              {"id":"msg_2","type":"message","status":"completed","role":"assistant","content":[]}
            ]}
            """;
        using var parser = Parse("application/json", Encoding.UTF8.GetBytes(body));
        Assert.That(Answer(parser), Is.EqualTo("""{"type":"message","role":"assistant","content":[{"type":"output_text","text":"a"},{"type":"refusal","refusal":"no"}]}"""));
    }

    [TestCase("incomplete")]
    [TestCase("failed")]
    [TestCase("in_progress")]
    public void JsonParser_StatusOtherThanCompleted_IsNotRecordable(string status)
    {
        var body = Encoding.UTF8.GetString(File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, "response.json")))
            .Replace("\"status\": \"completed\",\n  \"completed_at\"", $"\"status\": \"{status}\",\n  \"completed_at\"", StringComparison.Ordinal);
        Assert.That(body, Does.Contain($"\"status\": \"{status}\""));
        using var parser = Parse("application/json", Encoding.UTF8.GetBytes(body));
        Assert.That(parser.Failure, Is.Not.Null);
        Assert.That(parser.Completed, Is.False);
    }

    [Test]
    public void JsonParser_ErrorBody_IsNotRecordable()
    {
        using var parser = Parse("application/json", File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, "error-500.json")));
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [Test]
    public void CreateResponseParser_UnknownMediaType_ReturnsNull()
    {
        Assert.That(s_dialect.CreateResponseParser("text/plain"), Is.Null);
        Assert.That(s_dialect.CreateResponseParser(null), Is.Null);
    }

    [TestCase("""{"model":"m","input":"Hi \"you\""}""", """{"role":"user","content":"Hi \"you\""}""")]
    [TestCase("""{"input":[{"role":"developer","content":"d"},{"role":"user","content":[{"type":"input_text","text":"Hi"}]}]}""", """{"role":"user","content":[{"type":"input_text","text":"Hi"}]}""")]
    public void WriteTurnMessages_WritesTheInputsThenTheAnswer(string body, string expectedInput)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(bytes, fullHistory: false, plan), Is.EqualTo(ParseResult.Splice));
        using var parser = Parse("text/event-stream", File.ReadAllBytes(FakeUpstream.FixturePath(Fixtures, "stream.sse")));

        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            s_dialect.WriteTurnMessages(writer, bytes, plan, parser);
            writer.WriteEndArray();
        }

        Assert.That(Encoding.UTF8.GetString(buffer.WrittenSpan), Is.EqualTo($"[{expectedInput},{StreamAnswer}]"));
    }

    [Test]
    public void ReadThenWrite_OwnMessages_KeepTextImagesToolCallsAndResultsWithIds()
    {
        const string stored = """
            [{"role":"user","content":[{"type":"input_text","text":"What is this?"},{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="},{"type":"input_image","image_url":"https://example.com/cat.png","detail":"low"}]},
             {"type":"message","role":"assistant","content":[{"type":"output_text","text":"A cat. "},{"type":"output_text","text":"Checking."}]},
             {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"location\":\"Paris\"}"},
             {"type":"function_call","call_id":"call_2","name":"get_time","arguments":"{}"},
             {"type":"function_call_output","call_id":"call_1","output":"Sunny"},
             {"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"12:00"}]},
             {"role":"user","content":"Thanks"},
             {"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAA"},
             {"type":"message","role":"assistant","content":[{"type":"output_text","text":"You're welcome"}]}]
            """;
        var drops = new Drops();
        var messages = new List<ChatMessage>();
        s_dialect.ReadMessages(Encoding.UTF8.GetBytes(stored), messages, drops);
        ToolIds.Pair(messages);

        Assert.That(messages.Select(m => m.Role), Is.EqualTo(new[] { ChatRole.User, ChatRole.Assistant, ChatRole.User, ChatRole.User, ChatRole.Assistant }));
        Assert.That(messages[0].Parts[1], Is.EqualTo(new ImagePart("image/png", "iVBORw0KGgo=", null)));
        Assert.That(messages[1].Parts.OfType<ToolCallPart>().Select(c => c.Id), Is.EqualTo(new[] { "call_1", "call_2" }), "parallel calls join the answer's message");
        Assert.That(messages[2].Parts, Is.EqualTo(new ChatPart[]
        {
            new ToolResultPart("call_1", "get_weather", "Sunny", false),
            new ToolResultPart("call_2", "get_time", "12:00", false),
        }));
        Assert.That(drops.Kinds, Is.EqualTo(new[] { DropKind.Reasoning }));

        var written = Write(messages, drops);
        Assert.That(written, Is.EqualTo("""
            [{"role":"user","content":[{"type":"input_text","text":"What is this?"},{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo=","detail":"auto"},{"type":"input_image","image_url":"https://example.com/cat.png","detail":"auto"}]},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"A cat. "},{"type":"output_text","text":"Checking."}]},
            {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\u0022location\u0022:\u0022Paris\u0022}"},
            {"type":"function_call","call_id":"call_2","name":"get_time","arguments":"{}"},
            {"type":"function_call_output","call_id":"call_1","output":"Sunny"},
            {"type":"function_call_output","call_id":"call_2","output":"12:00"},
            {"role":"user","content":[{"type":"input_text","text":"Thanks"}]},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"You\u0027re welcome"}]}]
            """.ReplaceLineEndings("").Replace("\n", "", StringComparison.Ordinal)));
        AssertValidInput(JsonDocument.Parse(written).RootElement);
    }

    [Test]
    public void ReadMessages_WhatOtherApisCannotTake_IsReportedByKind()
    {
        const string stored = """
            [{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","file_id":"file_1"},{"type":"input_file","file_id":"file_2"}]},
             {"type":"web_search_call","id":"ws_1","status":"completed"},
             {"type":"reasoning","id":"rs_1","summary":[]},
             {"type":"item_reference","id":"msg_1"},
             {"type":"message","role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]
            """;
        var drops = new Drops();
        var messages = new List<ChatMessage>();
        s_dialect.ReadMessages(Encoding.UTF8.GetBytes(stored), messages, drops);

        Assert.That(drops.Kinds, Is.EqualTo(new[] { DropKind.Image, DropKind.Other, DropKind.Other, DropKind.Reasoning, DropKind.Other }));
        Assert.That(messages.Select(m => (m.Role, ChatText.Join(m))), Is.EqualTo(new[] { (ChatRole.User, "a"), (ChatRole.Assistant, "no") }));
    }

    [Test]
    public void ReadMessages_StoredAnswerOfAStream_ReadsAsTheAssistantsText()
    {
        var messages = new List<ChatMessage>();
        s_dialect.ReadMessages(Encoding.UTF8.GetBytes($$"""[{"role":"user","content":"Hi"},{{StreamAnswer}},{{StreamCall}}]"""), messages, new Drops());
        Assert.That(messages, Has.Count.EqualTo(2));
        Assert.That(messages[0].Parts, Is.EqualTo(new ChatPart[] { new TextPart("Hi") }));
        Assert.That(messages[1].Parts, Is.EqualTo(new ChatPart[]
        {
            new TextPart("Hello! How can I assist you today?"),
            new ToolCallPart("call_0UFGPwrziw5rbinYp7rthrTb", "get_weather_at_location", """{"location":"San Francisco, CA"}"""),
        }));
    }

    [Test]
    public void ChatToResponses_GivesAStructurallyValidInput_WithCallsAndResultsPaired()
    {
        const string chat = """
            [{"role":"user","content":[{"type":"text","text":"Weather here?"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}}]},
             {"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
             {"role":"tool","tool_call_id":"call_a","content":"Sunny"},
             {"role":"tool","tool_call_id":"call_b","content":[{"type":"text","text":"noon"}]},
             {"role":"assistant","content":"Sunny at noon."},
             {"role":"user","content":"Thanks"}]
            """;
        var drops = new Drops();
        var messages = new List<ChatMessage>();
        new OpenAIChatDialect().ReadMessages(Encoding.UTF8.GetBytes(chat), messages, drops);
        ToolIds.Pair(messages);
        var written = Write(messages, drops);

        using var document = JsonDocument.Parse(written);
        AssertValidInput(document.RootElement);
        var items = document.RootElement.EnumerateArray().Select(i => i.TryGetProperty("type", out var t) ? t.GetString() : i.GetProperty("role").GetString()).ToArray();
        Assert.That(items, Is.EqualTo(new[] { "user", "function_call", "function_call", "function_call_output", "function_call_output", "message", "user" }));
        Assert.That(document.RootElement[0].GetProperty("content")[1].GetProperty("image_url").GetString(), Is.EqualTo("data:image/jpeg;base64,/9j/4AAQ"));
        Assert.That(document.RootElement[1].GetProperty("arguments").GetString(), Is.EqualTo("""{"city":"Paris"}"""));
        Assert.That(document.RootElement[4].GetProperty("output").GetString(), Is.EqualTo("noon"));
        Assert.That(drops.Kinds, Is.Empty);
    }

    [Test]
    public void WriteMessages_ResultWithoutCallId_IsLeftOutAndReported()
    {
        var drops = new Drops();
        var written = Write([new ChatMessage(ChatRole.User).Add(new ToolResultPart(null, "f", "x", false)).Add(new TextPart("hi"))], drops);
        Assert.That(written, Is.EqualTo("""[{"role":"user","content":[{"type":"input_text","text":"hi"}]}]"""));
        Assert.That(drops.Kinds, Is.EqualTo(new[] { DropKind.Other }));
    }

    /// <summary>
    /// Checks a Responses <c>input</c> array the way the API would: known item types with their required fields and no
    /// response-only ones, content parts allowed for the role, and every function call output after its call.
    /// </summary>
    internal static void AssertValidInput(JsonElement input)
    {
        Assert.That(input.ValueKind, Is.EqualTo(JsonValueKind.Array), "input is an array");
        var calls = new HashSet<string>();
        foreach (var item in input.EnumerateArray())
        {
            var raw = item.GetRawText();
            Assert.That(item.ValueKind, Is.EqualTo(JsonValueKind.Object), raw);
            var keys = item.EnumerateObject().Select(p => p.Name).ToArray();
            var type = item.TryGetProperty("type", out var t) ? t.GetString() : "message";
            switch (type)
            {
                case "message":
                    Assert.That(keys, Is.SubsetOf(new[] { "type", "role", "content" }), raw);
                    var role = item.GetProperty("role").GetString();
                    Assert.That(role, Is.AnyOf("user", "assistant", "system", "developer"), raw);
                    var content = item.GetProperty("content");
                    if (content.ValueKind == JsonValueKind.String)
                    {
                        break;
                    }

                    Assert.That(content.ValueKind, Is.EqualTo(JsonValueKind.Array), raw);
                    Assert.That(content.GetArrayLength(), Is.GreaterThan(0), raw);
                    foreach (var part in content.EnumerateArray())
                    {
                        var partType = part.GetProperty("type").GetString();
                        string[] allowed = (role, partType) switch
                        {
                            ("assistant", "output_text") => ["type", "text"],
                            ("assistant", "refusal") => ["type", "refusal"],
                            (not "assistant", "input_text") => ["type", "text"],
                            (not "assistant", "input_image") => ["type", "image_url", "file_id", "detail"],
                            (not "assistant", "input_file") => ["type", "file_id", "file_data", "file_url", "filename"],
                            _ => [],
                        };
                        Assert.That(allowed, Is.Not.Empty, $"{partType} in a {role} message: {raw}");
                        Assert.That(part.EnumerateObject().Select(p => p.Name), Is.SubsetOf(allowed), raw);
                        Assert.That(part.GetProperty(allowed[1]).ValueKind, Is.EqualTo(JsonValueKind.String), raw);
                    }

                    break;
                case "function_call":
                    Assert.That(keys, Is.SubsetOf(new[] { "type", "call_id", "name", "arguments" }), raw);
                    Assert.That(JsonDocument.Parse(item.GetProperty("arguments").GetString()!).RootElement.ValueKind, Is.EqualTo(JsonValueKind.Object), raw);
                    Assert.That(item.GetProperty("name").GetString(), Is.Not.Empty, raw);
                    calls.Add(item.GetProperty("call_id").GetString()!);
                    break;
                case "function_call_output":
                    Assert.That(keys, Is.SubsetOf(new[] { "type", "call_id", "output" }), raw);
                    Assert.That(calls.Remove(item.GetProperty("call_id").GetString()!), Is.True, $"output after its call: {raw}");
                    Assert.That(item.GetProperty("output").ValueKind, Is.AnyOf(JsonValueKind.String, JsonValueKind.Array), raw);
                    break;
                case "reasoning":
                    Assert.That(keys, Is.SubsetOf(new[] { "type", "id", "summary", "encrypted_content" }), raw);
                    Assert.That(item.GetProperty("summary").ValueKind, Is.EqualTo(JsonValueKind.Array), raw);
                    Assert.That(item.GetProperty("encrypted_content").GetString(), Is.Not.Empty, raw);
                    break;
                default:
                    Assert.Fail($"unexpected item type {type}: {raw}");
                    break;
            }
        }

        Assert.That(calls, Is.Empty, "every call has its output");
    }

    private static ResponseParser Parse(string mediaType, byte[] bytes, int chunk = 1 << 20) => DialectHarness.Parse(s_dialect, mediaType, bytes, chunk);

    private static string Answer(ResponseParser parser) => DialectHarness.Answer(parser);

    private static string Write(List<ChatMessage> messages, IDropSink drops) => DialectHarness.Write(s_dialect, messages, drops);

    private static string[] Inputs(string body, SplicePlan plan) =>
        plan.Inputs.Select(r =>
        {
            var item = JsonDocument.Parse(body[r]).RootElement;
            return item.TryGetProperty("type", out var type) && type.GetString() != "message" ? type.GetString()! : item.GetProperty("role").GetString()!;
        }).ToArray();

    private static string Splice(string body, string[] storedTurns) => DialectHarness.Splice(s_dialect, body, storedTurns);

    private sealed class Drops : IDropSink
    {
        public List<DropKind> Kinds { get; } = [];

        public void Dropped(DropKind kind) => Kinds.Add(kind);
    }
}
