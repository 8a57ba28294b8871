using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Tests.Dialects;

/// <summary>
/// The conversion pair of <c>openai-chat</c>: its messages read into the shared model and written back, and
/// <see cref="ToolIds"/> pairing calls with results. No network: what goes in and out is JSON text.
/// </summary>
public sealed class OpenAIChatConversionTests
{
    private const string Png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

    private static readonly OpenAIChatDialect s_dialect = new();

    [Test]
    public void ReadMessages_TextContent_GivesUserAndAssistantTextParts()
    {
        var messages = Read("""
            [{"role":"user","content":"Hello!"},{"role":"assistant","content":"Hello! How can I assist you today?"},
             {"role":"user","content":[{"type":"text","text":"Tell me "},{"type":"text","text":"a joke."}]}]
            """);

        Assert.That(messages.Select(m => m.Role), Is.EqualTo(new[] { ChatRole.User, ChatRole.Assistant, ChatRole.User }));
        Assert.That(messages[0].Parts, Is.EqualTo(new ChatPart[] { new TextPart("Hello!") }));
        Assert.That(messages[1].Parts, Is.EqualTo(new ChatPart[] { new TextPart("Hello! How can I assist you today?") }));
        Assert.That(messages[2].Parts, Is.EqualTo(new ChatPart[] { new TextPart("Tell me "), new TextPart("a joke.") }));
    }

    [Test]
    public void ReadMessages_UserImages_DataUrlBecomesBase64_HttpUrlIsKept()
    {
        var messages = Read($$$"""
            [{"role":"user","content":[
              {"type":"text","text":"What is in these images?"},
              {"type":"image_url","image_url":{"url":"data:image/png;base64,{{{Png}}}","detail":"low"}},
              {"type":"image_url","image_url":{"url":"https://upload.wikimedia.org/wikipedia/commons/cat.jpg"}}]}]
            """);

        Assert.That(messages.Single().Parts, Is.EqualTo(new ChatPart[]
        {
            new TextPart("What is in these images?"),
            new ImagePart("image/png", Png, null),
            new ImagePart(null, null, "https://upload.wikimedia.org/wikipedia/commons/cat.jpg"),
        }));
    }

    [Test]
    public void WriteMessages_UserImages_Base64AsDataUrl_UrlAsItWas()
    {
        var drops = new DropCounter();
        var json = Write(
            [
                new ChatMessage(ChatRole.User)
                    .Add(new TextPart("Compare them."))
                    .Add(new ImagePart("image/jpeg", "/9j/4AAQ", null))
                    .Add(new ImagePart(null, null, "https://example.com/b.png")),
            ],
            drops);

        Assert.That(json, Is.EqualTo(
            """[{"role":"user","content":[{"type":"text","text":"Compare them."},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}},{"type":"image_url","image_url":{"url":"https://example.com/b.png"}}]}]"""));
        Assert.That(drops.Total, Is.Zero, "Chat Completions takes both forms");
    }

    [Test]
    public void ReadMessages_AssistantToolCallsThenToolMessages_GiveCallsAndResultsPairedById()
    {
        var messages = Read("""
            [{"role":"user","content":"Weather and time in Paris?"},
             {"role":"assistant","content":null,"tool_calls":[
               {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}},
               {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
             {"role":"tool","tool_call_id":"call_a","content":"Sunny"},
             {"role":"tool","tool_call_id":"call_b","content":[{"type":"text","text":"noon"}]},
             {"role":"assistant","content":"Sunny, and it is noon."}]
            """);
        ToolIds.Pair(messages);

        Assert.That(messages.Select(m => m.Role), Is.EqualTo(new[] { ChatRole.User, ChatRole.Assistant, ChatRole.User, ChatRole.Assistant }));
        Assert.That(messages[1].Parts, Is.EqualTo(new ChatPart[]
        {
            new ToolCallPart("call_a", "get_weather", """{"location":"Paris"}"""),
            new ToolCallPart("call_b", "get_time", "{}"),
        }), "a call-only answer has no text part");
        Assert.That(messages[2].Parts, Is.EqualTo(new ChatPart[]
        {
            new ToolResultPart("call_a", "get_weather", "Sunny", false),
            new ToolResultPart("call_b", "get_time", "noon", false),
        }), "both tool messages are one user message, in order, named after their calls");
    }

    [Test]
    public void ReadMessages_Refusal_IsReadAsText()
    {
        var messages = Read("""
            [{"role":"user","content":"How do I pick a lock?"},
             {"role":"assistant","content":null,"refusal":"I can't help with that."},
             {"role":"user","content":"Then something else?"},
             {"role":"assistant","content":[{"type":"refusal","refusal":"Still no."}]}]
            """);

        Assert.That(messages[1].Parts, Is.EqualTo(new ChatPart[] { new TextPart("I can't help with that.") }));
        Assert.That(messages[3].Parts, Is.EqualTo(new ChatPart[] { new TextPart("Still no.") }));
    }

    [Test]
    public void ReadMessages_AudioAndFileParts_AreDroppedAsOther()
    {
        var drops = new DropCounter();
        var messages = Read("""
            [{"role":"user","content":[
              {"type":"text","text":"Transcribe this and read the file."},
              {"type":"input_audio","input_audio":{"data":"UklGR","format":"wav"}},
              {"type":"file","file":{"file_id":"file-abc123"}}]}]
            """, drops);

        Assert.That(messages.Single().Parts, Is.EqualTo(new ChatPart[] { new TextPart("Transcribe this and read the file.") }));
        Assert.That(drops.Counts, Is.EqualTo(new Dictionary<DropKind, int> { [DropKind.Other] = 2 }));
    }

    [Test]
    public void WriteMessages_ToolResultsAndUserText_ToolMessagesComeFirst()
    {
        // Anthropic's shape: the results and what the user adds, in one user message.
        var json = Write(
            [
                new ChatMessage(ChatRole.Assistant).Add(new ToolCallPart("toolu_1", "get_weather", """{"location":"Paris"}""")),
                new ChatMessage(ChatRole.User)
                    .Add(new TextPart("Also, thanks."))
                    .Add(new ToolResultPart("toolu_1", "get_weather", "Sunny", false)),
            ]);

        Assert.That(json, Is.EqualTo(
            """[{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}}]},"""
            + """{"role":"tool","tool_call_id":"toolu_1","content":"Sunny"},"""
            + """{"role":"user","content":[{"type":"text","text":"Also, thanks."}]}]"""));
    }

    [Test]
    public void WriteMessages_AssistantWithOnlyToolCalls_HasNullContent()
    {
        var json = Write([new ChatMessage(ChatRole.Assistant).Add(new ToolCallPart("call_1", "get_time", "{}"))]);

        using var document = JsonDocument.Parse(json);
        var assistant = document.RootElement[0];
        Assert.That(assistant.GetProperty("content").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(assistant.GetProperty("tool_calls").GetArrayLength(), Is.EqualTo(1));
    }

    [Test]
    public void WriteMessages_AssistantWithTextAndToolCalls_KeepsBoth()
    {
        var json = Write(
        [
            new ChatMessage(ChatRole.Assistant)
                .Add(new TextPart("Let me check."))
                .Add(new ToolCallPart("call_1", "get_time", "{}")),
        ]);

        Assert.That(json, Is.EqualTo(
            """[{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{}"}}]}]"""));
    }

    [Test]
    public void WriteMessages_AssistantLeftWithNothing_HasEmptyTextContent()
    {
        // E.g. an Anthropic answer that was only thinking: Chat Completions refuses an assistant message whose content is
        // null without tool calls.
        var json = Write([new ChatMessage(ChatRole.User).Add(new TextPart("Think.")), new ChatMessage(ChatRole.Assistant)]);

        Assert.That(json, Is.EqualTo("""[{"role":"user","content":[{"type":"text","text":"Think."}]},{"role":"assistant","content":""}]"""));
    }

    [Test]
    public void WriteMessages_PartsChatCompletionsCannotTake_AreLeftOutAndCounted()
    {
        var drops = new DropCounter();
        var json = Write(
            [
                new ChatMessage(ChatRole.Assistant).Add(new TextPart("Here it is.")).Add(new ImagePart("image/png", Png, null)),
                new ChatMessage(ChatRole.User).Add(new ToolResultPart(null, "get_time", "noon", false)).Add(new TextPart("ok")),
            ],
            drops);

        Assert.That(json, Is.EqualTo("""[{"role":"assistant","content":"Here it is."},{"role":"user","content":[{"type":"text","text":"ok"}]}]"""),
            "an assistant's image has no place in Chat Completions; a result without a call id cannot be a tool message");
        Assert.That(drops.Counts, Is.EqualTo(new Dictionary<DropKind, int> { [DropKind.Image] = 1, [DropKind.Other] = 1 }));
    }

    [Test]
    public void ReadMessages_ToolArguments_AreAlwaysAJsonObjectsText()
    {
        var drops = new DropCounter();
        var messages = Read("""
            [{"role":"assistant","content":null,"tool_calls":[
              {"id":"c1","type":"function","function":{"name":"a","arguments":"{\n\"location\": \"Boston, MA\"\n}"}},
              {"id":"c2","type":"function","function":{"name":"b","arguments":""}},
              {"id":"c3","type":"function","function":{"name":"c","arguments":"{\"location\":\"Bos"}},
              {"id":"c4","type":"function","function":{"name":"d","arguments":{"unit":"c"}}},
              {"id":"c5","type":"function","function":{"name":"e"}}]}]
            """, drops);

        Assert.That(messages.Single().Parts.Cast<ToolCallPart>().Select(c => c.Arguments), Is.EqualTo(new[]
        {
            "{\n\"location\": \"Boston, MA\"\n}",
            "{}",
            "{}",
            """{"unit":"c"}""",
            "{}",
        }), "valid objects as they were; no arguments as an empty object; arguments cut short (finish_reason length) cannot be carried");
        Assert.That(drops.Counts, Is.EqualTo(new Dictionary<DropKind, int> { [DropKind.Other] = 1 }));
    }

    [Test]
    public void ReadMessages_ValuesOfUnexpectedTypes_AreSkippedRatherThanThrown()
    {
        var drops = new DropCounter();
        var messages = Read("""
            [{"role":"user","content":[{"type":"text","text":5},{"type":"image_url","image_url":{"url":null}},{"type":"text","text":"kept"}]},
             {"role":"assistant","content":null,"tool_calls":[{"id":7,"type":"function","function":{"name":"f","arguments":"{}"}}]},
             {"role":"tool","tool_call_id":7,"content":["r",{"type":"text","text":"s"},3]},
             "not a message"]
            """, drops);
        ToolIds.Pair(messages);

        Assert.That(messages[0].Parts, Is.EqualTo(new ChatPart[] { new TextPart("kept") }));
        var call = (ToolCallPart)messages[1].Parts.Single();
        Assert.That(call.Id, Does.StartWith("call_mnemo_"), "a call whose id is not a string gets one");
        Assert.That(messages[2].Parts.Single(), Is.EqualTo(new ToolResultPart(call.Id, "f", "rs", false)));
        Assert.That(messages, Has.Count.EqualTo(3));
        Assert.That(drops.Counts, Is.EqualTo(new Dictionary<DropKind, int> { [DropKind.Other] = 4 }), "the number text, the null URL, the number in the result, the string message");
    }

    [Test]
    public void WriteReadWrite_IsStable()
    {
        List<ChatMessage> model =
        [
            new ChatMessage(ChatRole.User).Add(new TextPart("Weather in \"Paris\"? \u00e9\u2603")).Add(new ImagePart("image/png", Png, null)).Add(new ImagePart(null, null, "https://example.com/a.png")),
            new ChatMessage(ChatRole.Assistant).Add(new TextPart("Checking.")).Add(new ToolCallPart("call_1", "get_weather", """{"location":"Paris"}""")).Add(new ToolCallPart("call_2", "get_weather", """{"location":"Lyon"}""")),
            new ChatMessage(ChatRole.User).Add(new ToolResultPart("call_1", "get_weather", "Sunny", false)).Add(new ToolResultPart("call_2", "get_weather", "Rain", false)).Add(new TextPart("And tomorrow?")),
            new ChatMessage(ChatRole.Assistant).Add(new ToolCallPart("call_3", "get_forecast", "{}")),
            new ChatMessage(ChatRole.User).Add(new ToolResultPart("call_3", "get_forecast", "Clouds", false)),
            new ChatMessage(ChatRole.Assistant).Add(new TextPart("Sunny then clouds.")),
        ];

        var first = WriteRaw(model);
        var read = Read(first);
        ToolIds.Pair(read);
        var second = WriteRaw(read);

        Assert.That(second, Is.EqualTo(first), "byte for byte");
        Assert.That(WriteRaw(Read(second)), Is.EqualTo(first));
        Assert.That(read.Where(m => m.Role == ChatRole.Assistant).SelectMany(m => m.Parts),
            Is.EqualTo(model.Where(m => m.Role == ChatRole.Assistant).SelectMany(m => m.Parts)), "calls keep ids, names and arguments");
        Assert.That(read.SelectMany(m => m.Parts).OfType<ToolResultPart>(), Is.EqualTo(model.SelectMany(m => m.Parts).OfType<ToolResultPart>()),
            "results keep their call ids and, once paired, their names");
        Assert.That(read.SelectMany(m => m.Parts).OfType<ImagePart>(), Is.EqualTo(model.SelectMany(m => m.Parts).OfType<ImagePart>()));
    }

    [Test]
    public void ReadWrite_StoredTurnsAsTheProxyWritesThem_ComeBackEquivalent()
    {
        // A user turn as a client sends it and the two answer shapes the parsers store.
        const string stored = """
            [{"role":"user","content":"Weather in Paris?"},
             {"role":"assistant","content":null,"tool_calls":[{"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris, France\"}"}}]},
             {"role":"tool","tool_call_id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","content":"18C and sunny"},
             {"role":"assistant","content":"Hello! How can I assist you today?"}]
            """;

        var messages = Read(stored);
        ToolIds.Pair(messages);
        var written = Write(messages);

        Assert.That(written, Is.EqualTo(
            """[{"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]},"""
            + """{"role":"assistant","content":null,"tool_calls":[{"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris, France\"}"}}]},"""
            + """{"role":"tool","tool_call_id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","content":"18C and sunny"},"""
            + """{"role":"assistant","content":"Hello! How can I assist you today?"}]"""));
    }

    [Test]
    public void Pair_IdlessCallsGetIds_AndIdlessResultsPairWithThemInOrder_ByName()
    {
        // Older Ollama: no call ids; results carry the tool's name only, here in another order than the calls.
        List<ChatMessage> messages =
        [
            new ChatMessage(ChatRole.User).Add(new TextPart("Weather in Paris and Lyon, and the time?")),
            new ChatMessage(ChatRole.Assistant)
                .Add(new ToolCallPart(null, "get_weather", """{"location":"Paris"}"""))
                .Add(new ToolCallPart(null, "get_weather", """{"location":"Lyon"}"""))
                .Add(new ToolCallPart(null, "get_time", "{}")),
            new ChatMessage(ChatRole.User)
                .Add(new ToolResultPart(null, "get_time", "noon", false))
                .Add(new ToolResultPart(null, "get_weather", "Paris: sunny", false))
                .Add(new ToolResultPart(null, "get_weather", "Lyon: rain", false)),
            new ChatMessage(ChatRole.Assistant).Add(new ToolCallPart(null, "get_weather", """{"location":"Nice"}""")),
            new ChatMessage(ChatRole.User).Add(new ToolResultPart(null, null, "Nice: clouds", false)),
        ];

        ToolIds.Pair(messages);

        var calls = messages.SelectMany(m => m.Parts).OfType<ToolCallPart>().ToList();
        Assert.That(calls.Select(c => c.Id), Is.EqualTo(new[] { "call_mnemo_1", "call_mnemo_2", "call_mnemo_3", "call_mnemo_4" }));
        Assert.That(messages[2].Parts, Is.EqualTo(new ChatPart[]
        {
            new ToolResultPart("call_mnemo_3", "get_time", "noon", false),
            new ToolResultPart("call_mnemo_1", "get_weather", "Paris: sunny", false),
            new ToolResultPart("call_mnemo_2", "get_weather", "Lyon: rain", false),
        }), "two calls of one tool are answered in the order they were made");
        Assert.That(messages[4].Parts, Is.EqualTo(new ChatPart[] { new ToolResultPart("call_mnemo_4", "get_weather", "Nice: clouds", false) }),
            "a result with neither id nor name answers the oldest open call");

        var json = Write(messages);
        Assert.That(json, Does.Contain("""{"role":"tool","tool_call_id":"call_mnemo_3","content":"noon"}"""));
        AssertToolsPaired(json);
    }

    [Test]
    public void Pair_ResultsWithIds_AreLeftAsTheyAre_AndGetTheirCallsName()
    {
        List<ChatMessage> messages =
        [
            new ChatMessage(ChatRole.Assistant).Add(new ToolCallPart("a", "first", "{}")).Add(new ToolCallPart("b", "second", "{}")),
            new ChatMessage(ChatRole.User).Add(new ToolResultPart("b", null, "2", false)).Add(new ToolResultPart("a", null, "1", true)),
        ];

        ToolIds.Pair(messages);

        Assert.That(messages[1].Parts, Is.EqualTo(new ChatPart[]
        {
            new ToolResultPart("b", "second", "2", false),
            new ToolResultPart("a", "first", "1", true),
        }));
    }

    private static List<ChatMessage> Read(string array, IDropSink? drops = null)
    {
        var messages = new List<ChatMessage>();
        s_dialect.ReadMessages(Encoding.UTF8.GetBytes(array), messages, drops ?? new DropCounter());
        return messages;
    }

    /// <summary>The written array, re-serialized without the writer's default escaping of quotes and non-ASCII, for readable expectations.</summary>
    private static string Write(IReadOnlyList<ChatMessage> messages, IDropSink? drops = null)
    {
        using var document = JsonDocument.Parse(WriteRaw(messages, drops));
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            document.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The bytes as the converter writes them.</summary>
    private static string WriteRaw(IReadOnlyList<ChatMessage> messages, IDropSink? drops = null)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            s_dialect.WriteMessages(writer, messages, drops ?? new DropCounter());
            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Chat Completions' rule: each tool message answers an open call of the assistant message before it, and every call is answered before any other message.</summary>
    private static void AssertToolsPaired(string messagesArray)
    {
        using var document = JsonDocument.Parse(messagesArray);
        var open = new List<string>();
        foreach (var message in document.RootElement.EnumerateArray())
        {
            if (message.GetProperty("role").GetString() == "tool")
            {
                Assert.That(open.Remove(message.GetProperty("tool_call_id").GetString()!), Is.True, message.GetRawText());
                continue;
            }

            Assert.That(open, Is.Empty, $"unanswered calls before {message.GetRawText()}");
            if (message.TryGetProperty("tool_calls", out var calls))
            {
                open.AddRange(calls.EnumerateArray().Select(c => c.GetProperty("id").GetString()!));
            }
        }

        Assert.That(open, Is.Empty);
    }

    private sealed class DropCounter : IDropSink
    {
        public Dictionary<DropKind, int> Counts { get; } = [];

        public int Total => Counts.Values.Sum();

        public void Dropped(DropKind kind) => Counts[kind] = Counts.GetValueOrDefault(kind) + 1;
    }
}
