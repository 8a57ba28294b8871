using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Dialects;

public sealed class OpenAIChatDialectTests
{
    private static readonly OpenAIChatDialect s_dialect = new();

    private static readonly string[] s_stored =
    [
        """{"role":"user","content":"one"},{"role":"assistant","content":"1"}""",
        """{"role":"user","content":"two"},{"role":"assistant","content":"2"}""",
    ];

    [TestCase("""{"messages":[{"role":"system","content":"s"},{"role":"user","content":"new"}]}""", "system,user:one,assistant,user:two,assistant,user:new")]
    [TestCase("""{"messages":[{"role":"developer","content":"d"},{"role":"system","content":"s"},{"role":"user","content":"new"}]}""", "developer,system,user:one,assistant,user:two,assistant,user:new")]
    [TestCase("""{"messages":[{"role":"user","content":"new"}]}""", "user:one,assistant,user:two,assistant,user:new")]
    [TestCase("""{"messages":[{"role":"system","content":"s"}]}""", "system,user:one,assistant,user:two,assistant")]
    [TestCase("""{"messages":[]}""", "user:one,assistant,user:two,assistant")]
    [TestCase("{\n  \"model\": \"m\",\n  \"messages\": [\n    { \"role\": \"system\", \"content\": \"s\" },\n    { \"content\": \"new\", \"role\": \"user\" }\n  ]\n}", "system,user:one,assistant,user:two,assistant,user:new")]
    [TestCase("""{"mess\u0061ges":[{"role":"system","content":"s"},{"role":"user","content":"new"}]}""", "system,user:one,assistant,user:two,assistant,user:new")]
    public void Splice_PutsHistoryAfterLeadingSystemMessages_AndKeepsValidJson(string body, string expected)
    {
        var spliced = Splice(body, s_stored);

        using var document = JsonDocument.Parse(spliced);
        var root = document.RootElement;
        var messages = root.EnumerateObject().Single(p => p.Value.ValueKind == JsonValueKind.Array).Value;
        var roles = messages.EnumerateArray().Select(m =>
        {
            var role = m.GetProperty("role").GetString()!;
            var content = m.GetProperty("content").GetString();
            return role == "user" ? $"user:{content}" : role;
        });
        Assert.That(string.Join(",", roles), Is.EqualTo(expected));
    }

    [Test]
    public void Splice_WithNoHistory_LeavesTheBodyAsItWas()
    {
        const string body = """{"messages":[{"role":"user","content":"new"}]}""";
        Assert.That(Splice(body, []), Is.EqualTo(body));
    }

    [Test]
    public void ParseRequest_Inject_TakesEveryNonSystemMessageAsInput()
    {
        const string body = """{"messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"tool","content":"c","tool_call_id":"x"}],"stream":true}""";
        var request = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, request), Is.EqualTo(ParseResult.Splice));
        Assert.That(Inputs(body, request), Is.EqualTo(new[] { "user", "assistant", "tool" }));
        Assert.That(request.Stream, Is.True);
    }

    [Test]
    public void ParseRequest_Record_TakesOnlyWhatFollowsTheLastAssistantMessage()
    {
        const string body = """{"messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"tool","content":"c","tool_call_id":"x"},{"role":"user","content":"d"}]}""";
        var request = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: true, request), Is.EqualTo(ParseResult.Splice));
        Assert.That(Inputs(body, request), Is.EqualTo(new[] { "tool", "user" }));
    }

    [TestCase("""{"messages":[]} x""")]
    [TestCase("""{"messages":[{"role":"user","content":"a"}]""")]
    [TestCase("""{"messages":["hello"]}""")]
    [TestCase("""{"messages":[{"role":7}]}""")]
    public void ParseRequest_Malformed_ReturnsAnError(string body)
    {
        var result = s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, new SplicePlan());
        Assert.That(result.Outcome, Is.EqualTo(ParseOutcome.Invalid));
        Assert.That(result.Error, Is.Not.Empty);
    }

    [TestCase("stream.sse", """{"role":"assistant","content":"Hello! How can I assist you today?"}""")]
    [TestCase("stream-usage.sse", """{"role":"assistant","content":"Hello! How can I assist you today?"}""")]
    [TestCase("stream-tool-calls.sse", """{"role":"assistant","content":null,"tool_calls":[{"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris, France\"}"}}]}""")]
    public void StreamParser_DocumentedStreams_GiveTheSameAnswerHoweverTheBytesAreCut(string fixture, string expected)
    {
        var bytes = File.ReadAllBytes(FakeUpstream.FixturePath("OpenAIChat", fixture));
        foreach (var chunk in new[] { bytes.Length, 1, 7, 64 })
        {
            using var parser = s_dialect.CreateResponseParser("text/event-stream")!;
            for (var i = 0; i < bytes.Length; i += chunk)
            {
                parser.Feed(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)));
            }

            parser.End();
            Assert.That(parser.Failure, Is.Null);
            Assert.That(parser.Completed, Is.True);
            Assert.That(Answer(parser), Is.EqualTo(expected), $"chunks of {chunk}");
        }
    }

    [Test]
    public void StreamParser_Usage_IsReadFromTheFinalChunk()
    {
        using var parser = Parse("text/event-stream", File.ReadAllBytes(FakeUpstream.FixturePath("OpenAIChat", "stream-usage.sse")));
        Assert.That(parser.Usage, Is.EqualTo(new TokenUsage(19, 10, -1, -1)));
    }

    [Test]
    public void StreamParser_CutBeforeAnyEnd_IsNotComplete()
    {
        var events = FakeUpstream.SplitEvents(File.ReadAllBytes(FakeUpstream.FixturePath("OpenAIChat", "stream.sse")));
        using var parser = Parse("text/event-stream", events.Take(3).SelectMany(e => e).ToArray());
        Assert.That(parser.Completed, Is.False);
    }

    [Test]
    public void StreamParser_ErrorEvent_MakesTheAnswerUnrecordable()
    {
        using var parser = Parse("text/event-stream", "data: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: [DONE]\n\n"u8.ToArray());
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [Test]
    public void StreamParser_SecondChoice_IsNotMixedIntoTheFirst()
    {
        var stream = """
            data: {"choices":[{"index":1,"delta":{"content":"B"}},{"index":0,"delta":{"content":"A"}}]}

            data: {"choices":[{"delta":{"content":"a"},"index":0,"finish_reason":"stop"},{"index":1,"delta":{"content":"b"}}]}

            """.ReplaceLineEndings("\n");
        using var parser = Parse("text/event-stream", Encoding.UTF8.GetBytes(stream));
        Assert.That(Answer(parser), Is.EqualTo("""{"role":"assistant","content":"Aa"}"""));
        Assert.That(parser.Completed, Is.True);
    }

    [TestCase("completion.json", """{"role":"assistant","content":"Hello! How can I assist you today?"}""")]
    [TestCase("completion-tool-calls.json", """{"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"get_current_weather","arguments":"{\n\"location\": \"Boston, MA\"\n}"}}]}""")]
    public void JsonParser_DocumentedResponses_KeepOnlyInputValidFields(string fixture, string expected)
    {
        var bytes = File.ReadAllBytes(FakeUpstream.FixturePath("OpenAIChat", fixture));
        using var parser = Parse("application/json", bytes, chunk: 5);
        Assert.That(parser.Completed, Is.True);
        var answer = Answer(parser);
        Assert.That(Compact(answer), Is.EqualTo(Compact(expected)));
        Assert.That(answer, Does.Not.Contain("annotations").And.Not.Contain("refusal"));
    }

    [Test]
    public void JsonParser_AnswerWithNeitherTextNorCalls_ReplaysWithEmptyContent()
    {
        // Chat Completions refuses {"role":"assistant","content":null} without tool_calls: the session would fail for good.
        var body = """{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"length"}]}"""u8.ToArray();
        using var parser = Parse("application/json", body);
        Assert.That(parser.Completed, Is.True);
        Assert.That(Answer(parser), Is.EqualTo("""{"role":"assistant","content":""}"""));
    }

    [Test]
    public void JsonParser_ErrorBody_IsNotRecordable()
    {
        using var parser = Parse("application/json", File.ReadAllBytes(FakeUpstream.FixturePath("OpenAIChat", "error-500.json")));
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [Test]
    public void CreateResponseParser_UnknownMediaType_ReturnsNull()
    {
        Assert.That(s_dialect.CreateResponseParser("text/plain"), Is.Null);
        Assert.That(s_dialect.CreateResponseParser(null), Is.Null);
    }

    private static ResponseParser Parse(string mediaType, byte[] bytes, int chunk = 1 << 20) => DialectHarness.Parse(s_dialect, mediaType, bytes, chunk);

    private static string Answer(ResponseParser parser) => DialectHarness.Answer(parser);

    private static string Compact(string json) => DialectHarness.Compact(json);

    private static string[] Inputs(string body, SplicePlan request) =>
        request.Inputs.Select(r => JsonDocument.Parse(body[r]).RootElement.GetProperty("role").GetString()!).ToArray();

    internal static string Splice(string body, string[] storedTurns) => DialectHarness.Splice(s_dialect, body, storedTurns);
}
