using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Dialects;

public sealed class AnthropicMessagesDialectTests
{
    private const string Dialect = "AnthropicMessages";

    private const string ThinkingBlock =
        """{"type":"thinking","thinking":"Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3\n3. 27 * 400 = 10,800\n4. 27 * 50 = 1,350\n5. 27 * 3 = 81\n6. 10,800 + 1,350 + 81 = 12,231","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."}""";

    private static readonly AnthropicMessagesDialect s_dialect = new();

    private static readonly string[] s_stored =
    [
        """{"role":"user","content":"one"},{"role":"assistant","content":[{"type":"text","text":"1"}]}""",
        """{"role":"user","content":"two"},{"role":"assistant","content":[{"type":"text","text":"2"}]}""",
    ];

    [TestCase("""{"model":"m","system":"s","messages":[{"role":"user","content":"new"}]}""", "user:one,assistant,user:two,assistant,user:new")]
    [TestCase("""{"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"new"},{"role":"assistant","content":"prefill"}],"max_tokens":5}""", "user:one,assistant,user:two,assistant,user:new,assistant")]
    [TestCase("""{"messages":[]}""", "user:one,assistant,user:two,assistant")]
    [TestCase("{\n  \"messages\" : [\n    { \"content\": \"new\", \"role\": \"user\" }\n  ],\n  \"system\": \"s\"\n}", "user:one,assistant,user:two,assistant,user:new")]
    public void Splice_PutsHistoryFirstInMessages_AndLeavesSystemAlone(string body, string expected)
    {
        var spliced = Splice(body, s_stored);

        using var document = JsonDocument.Parse(spliced);
        var roles = document.RootElement.GetProperty("messages").EnumerateArray().Select(m =>
        {
            var role = m.GetProperty("role").GetString()!;
            return role == "user" ? $"user:{m.GetProperty("content").GetString()}" : role;
        });
        Assert.That(string.Join(",", roles), Is.EqualTo(expected));
        var original = JsonDocument.Parse(body).RootElement;
        if (original.TryGetProperty("system", out var system))
        {
            Assert.That(document.RootElement.GetProperty("system").GetRawText(), Is.EqualTo(system.GetRawText()), "system is not touched");
        }
    }

    [Test]
    public void Splice_BytesOutsideTheSplicePoint_AreUnchanged()
    {
        const string body = """{ "model":"m", "system":"s", "messages": [ {"content":"caf\u00e9","role":"user"} ], "max_tokens": 1024 }""";
        var spliced = Splice(body, [s_stored[0]]);
        Assert.That(spliced, Is.EqualTo(body.Replace("[ {", "[" + s_stored[0] + ", {", StringComparison.Ordinal)));
    }

    [Test]
    public void ParseRequest_Inject_TakesEveryMessageAsInput()
    {
        const string body = """{"system":"s","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":"c"}]}],"stream":true}""";
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, plan), Is.EqualTo(ParseResult.Splice));
        Assert.That(Inputs(body, plan), Is.EqualTo(new[] { "user", "assistant", "user" }));
        Assert.That(plan.Stream, Is.True);
        Assert.That(plan.Start, Is.EqualTo(body.IndexOf('[', StringComparison.Ordinal) + 1), "history goes first in messages");
    }

    [Test]
    public void ParseRequest_Record_TakesOnlyWhatFollowsTheLastAssistantMessage()
    {
        const string body = """{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}""";
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: true, plan), Is.EqualTo(ParseResult.Splice));
        Assert.That(Inputs(body, plan), Is.EqualTo(new[] { "user" }));
        Assert.That(plan.Stream, Is.Null);
    }

    [TestCase("not json")]
    [TestCase("""{"messages":[]} x""")]
    [TestCase("""{"messages":[{"role":"user","content":"a"}]""")]
    [TestCase("""{"messages":"hello"}""")]
    [TestCase("""{"messages":["hello"]}""")]
    [TestCase("""{"messages":[{"content":"no role"}]}""")]
    [TestCase("""{"model":"m","system":"s"}""")]
    public void ParseRequest_Malformed_ReturnsAnError(string body)
    {
        var result = s_dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, new SplicePlan());
        Assert.That(result.Outcome, Is.EqualTo(ParseOutcome.Invalid));
        Assert.That(result.Error, Is.Not.Empty);
    }

    [TestCase("/v1/messages", true)]
    [TestCase("/anthropic/v1/messages", true)]
    [TestCase("/v1/threads/thread_abc/messages", false)]
    [TestCase("/v1/messages/count_tokens", false)]
    [TestCase("/v1/chat/completions", false)]
    public void Registry_ClaimsOnlyMessagesPaths(string path, bool anthropic)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Path = path;
        var dialect = new DialectRegistry().ByPath(context.Request);
        Assert.That(dialect?.Id == DialectId.AnthropicMessages, Is.EqualTo(anthropic));
    }

    [TestCase("stream.sse", """{"role":"assistant","content":[{"type":"text","text":"Hello!"}]}""")]
    [TestCase("stream-tool-use.sse", """{"role":"assistant","content":[{"type":"text","text":"Okay, let's check the weather for San Francisco, CA:"},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","caller":{"type":"direct"},"input":{"location": "San Francisco, CA", "unit": "fahrenheit"}}]}""")]
    [TestCase("stream-thinking.sse", """{"role":"assistant","content":[""" + ThinkingBlock + """,{"type":"text","text":"27 * 453 = 12,231"}]}""")]
    public void StreamParser_DocumentedStreams_GiveTheSameAnswerHoweverTheBytesAreCut(string fixture, string expected)
    {
        var bytes = File.ReadAllBytes(FakeUpstream.FixturePath(Dialect, fixture));
        foreach (var chunk in new[] { bytes.Length, 1, 7, 64 })
        {
            using var parser = Parse("text/event-stream", bytes, chunk);
            Assert.That(parser.Failure, Is.Null, $"chunks of {chunk}");
            Assert.That(parser.Completed, Is.True, $"chunks of {chunk}");
            Assert.That(Answer(parser), Is.EqualTo(expected), $"chunks of {chunk}");
        }
    }

    [TestCase("stream.sse", 25, 15)]
    [TestCase("stream-tool-use.sse", 472, 89)]
    [TestCase("stream-thinking.sse", 46, 112)]
    public void StreamParser_Usage_StartsFromMessageStartAndTakesMessageDeltasCumulativeCount(string fixture, long input, long output)
    {
        using var parser = Parse("text/event-stream", File.ReadAllBytes(FakeUpstream.FixturePath(Dialect, fixture)));
        Assert.That(parser.Usage, Is.EqualTo(new TokenUsage(input, output, -1, -1)));
    }

    [Test]
    public void StreamParser_CachedPrompt_InputIsTheWholePromptWithCacheReadAndWrite()
    {
        var stream = Sse(
            ("message_start", """{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"usage":{"input_tokens":10,"cache_creation_input_tokens":50,"cache_read_input_tokens":100,"output_tokens":1}}}"""),
            ("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"""),
            ("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}"""),
            ("content_block_stop", """{"type":"content_block_stop","index":0}"""),
            ("message_delta", """{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":10,"cache_creation_input_tokens":50,"cache_read_input_tokens":100,"output_tokens":7}}"""),
            ("message_stop", """{"type":"message_stop"}"""));
        using var parser = Parse("text/event-stream", stream);
        Assert.That(parser.Usage, Is.EqualTo(new TokenUsage(160, 7, 100, 50)));
    }

    [Test]
    public void StreamParser_CutBeforeMessageStop_IsNotComplete()
    {
        var events = FakeUpstream.SplitEvents(File.ReadAllBytes(FakeUpstream.FixturePath(Dialect, "stream.sse")));
        foreach (var kept in new[] { 3, events.Count - 1 })
        {
            using var parser = Parse("text/event-stream", events.Take(kept).SelectMany(e => e).ToArray());
            Assert.That(parser.Completed, Is.False, $"{kept} events");
        }
    }

    [Test]
    public void StreamParser_ErrorEvent_MakesTheAnswerUnrecordable()
    {
        using var parser = Parse("text/event-stream", File.ReadAllBytes(FakeUpstream.FixturePath(Dialect, "stream-error.sse")));
        Assert.That(parser.Failure, Is.Not.Null);
        Assert.That(parser.Completed, Is.False);
    }

    [Test]
    public void StreamParser_ErrorAfterMessageStop_StillFails()
    {
        var stream = Sse(
            ("message_start", """{"type":"message_start","message":{"usage":{"input_tokens":1,"output_tokens":1}}}"""),
            ("message_stop", """{"type":"message_stop"}"""),
            ("error", """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"""));
        using var parser = Parse("text/event-stream", stream);
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [Test]
    public void StreamParser_DeltaForABlockThatNeverStarted_Fails()
    {
        var stream = Sse(("content_block_delta", """{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}}"""));
        using var parser = Parse("text/event-stream", stream);
        Assert.That(parser.Failure, Is.Not.Null);
    }

    [Test]
    public void StreamParser_PropertiesInAnyOrder_AndTypeOnlyOnTheEventLine_AreUnderstood()
    {
        var stream = Sse(
            ("message_start", """{"message":{"usage":{"output_tokens":1,"input_tokens":3}}}"""),
            ("content_block_start", """{"content_block":{"text":"","type":"text"},"index":0}"""),
            ("content_block_delta", """{"delta":{"text":"Hi \"there\"\u00e9","type":"text_delta"},"index":0,"type":"content_block_delta"}"""),
            ("ping", """{"type":"ping"}"""),
            ("content_block_stop", """{"index":0,"type":"content_block_stop"}"""),
            ("message_delta", """{"usage":{"output_tokens":4},"delta":{"stop_reason":"max_tokens"}}"""),
            ("message_stop", """{}"""));
        using var parser = Parse("text/event-stream", stream);
        Assert.That(parser.Completed, Is.True);
        Assert.That(Answer(parser), Is.EqualTo("""{"role":"assistant","content":[{"type":"text","text":"Hi \"there\"\u00e9"}]}"""), "text escaped as on the wire");
        Assert.That(parser.Usage, Is.EqualTo(new TokenUsage(3, 4, -1, -1)));
    }

    [TestCase("", "{}")]
    [TestCase("{\\\"city\\\": \\\"Par", "{}")]
    [TestCase("[1,2]", "{}")]
    [TestCase("{\\\"q\\\":\\\"\\\\u00e9\\\\n\\\"}", "{\"q\":\"\\u00e9\\n\"}")]
    public void StreamParser_ToolInput_IsAnObjectEvenWhenEmptyOrCutShort(string partialJson, string expectedInput)
    {
        var stream = Sse(
            ("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"""),
            ("content_block_delta", $$$"""{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{{{partialJson}}}"}}"""),
            ("content_block_stop", """{"type":"content_block_stop","index":0}"""),
            ("message_stop", """{"type":"message_stop"}"""));
        using var parser = Parse("text/event-stream", stream);
        Assert.That(parser.Failure, Is.Null);
        Assert.That(Answer(parser), Is.EqualTo($$"""{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{{expectedInput}}}]}"""));
    }

    [Test]
    public void StreamParser_RedactedThinkingAndServerToolBlocks_AreKept()
    {
        var stream = Sse(
            ("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4a"}}"""),
            ("content_block_stop", """{"type":"content_block_stop","index":0}"""),
            ("content_block_start", """{"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"""),
            ("content_block_delta", """{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"query\": \"weather\"}"}}"""),
            ("content_block_stop", """{"type":"content_block_stop","index":1}"""),
            ("content_block_start", """{"type":"content_block_start","index":2,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[{"type":"web_search_result","url":"https://example.com","title":"W","encrypted_content":"abc"}]}}"""),
            ("content_block_stop", """{"type":"content_block_stop","index":2}"""),
            ("content_block_start", """{"type":"content_block_start","index":3,"content_block":{"type":"text","text":"","citations":null}}"""),
            ("content_block_delta", """{"type":"content_block_delta","index":3,"delta":{"type":"citations_delta","citation":{"type":"web_search_result_location","url":"https://example.com"}}}"""),
            ("content_block_delta", """{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"Sunny"}}"""),
            ("content_block_stop", """{"type":"content_block_stop","index":3}"""),
            ("message_stop", """{"type":"message_stop"}"""));
        using var parser = Parse("text/event-stream", stream);
        Assert.That(Answer(parser), Is.EqualTo(
            """{"role":"assistant","content":[{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4a"},{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query": "weather"}},{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[{"type":"web_search_result","url":"https://example.com","title":"W","encrypted_content":"abc"}]},{"type":"text","text":"Sunny"}]}"""));
    }

    [Test]
    public void StreamParser_NoContent_WritesNoAssistantMessage()
    {
        var stream = Sse(
            ("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"""),
            ("content_block_stop", """{"type":"content_block_stop","index":0}"""),
            ("message_stop", """{"type":"message_stop"}"""));
        using var parser = Parse("text/event-stream", stream);
        Assert.That(parser.Completed, Is.True);
        Assert.That(Answer(parser), Is.Empty, "an assistant message without content would be rejected when replayed");
    }

    [TestCase("message.json", """{"role":"assistant","content":[{"type":"text","text":"Hi! My name is Claude."}]}""")]
    [TestCase("message-tool-use.json", """{"role":"assistant","content":[{"type":"text","text":"I'll check the current weather in San Francisco for you."},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","caller":{"type":"direct"},"input":{"location":"San Francisco, CA","unit":"celsius"}}]}""")]
    [TestCase("message-thinking.json", """{"role":"assistant","content":[{"type":"thinking","thinking":"Let me analyze this step by step...","signature":"WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL...."},{"type":"text","text":"Based on my analysis..."}]}""")]
    public void JsonParser_DocumentedResponses_KeepOnlyInputValidFields(string fixture, string expected)
    {
        var bytes = File.ReadAllBytes(FakeUpstream.FixturePath(Dialect, fixture));
        foreach (var chunk in new[] { bytes.Length, 5 })
        {
            using var parser = Parse("application/json", bytes, chunk);
            Assert.That(parser.Failure, Is.Null);
            Assert.That(parser.Completed, Is.True);
            Assert.That(Compact(Answer(parser)), Is.EqualTo(Compact(expected)));
            Assert.That(Answer(parser), Does.Not.Contain("citations").And.Not.Contain("stop_reason"));
        }
    }

    [Test]
    public void JsonParser_Usage_IsNormalised()
    {
        using var parser = Parse("application/json", File.ReadAllBytes(FakeUpstream.FixturePath(Dialect, "message.json")));
        Assert.That(parser.Usage, Is.EqualTo(new TokenUsage(2095, 503, -1, -1)));

        using var cached = Parse("application/json", """
            {"type":"message","role":"assistant","content":[{"type":"text","text":"x"}],"usage":{"input_tokens":5,"cache_read_input_tokens":2000,"cache_creation_input_tokens":null,"output_tokens":9}}
            """u8.ToArray());
        Assert.That(cached.Usage, Is.EqualTo(new TokenUsage(2005, 9, 2000, -1)));
    }

    [TestCase("error-500.json")]
    [TestCase("error-400.json")]
    public void JsonParser_ErrorBody_IsNotRecordable(string fixture)
    {
        using var parser = Parse("application/json", File.ReadAllBytes(FakeUpstream.FixturePath(Dialect, fixture)));
        Assert.That(parser.Failure, Is.Not.Null);
        Assert.That(parser.Completed, Is.False);
    }

    [Test]
    public void JsonParser_ServerToolBlocks_AreKeptAsTheyCame()
    {
        const string content = """[{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"q"}},{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]},{"type":"text","text":"t","citations":[{"type":"web_search_result_location","url":"u"}]}]""";
        using var parser = Parse("application/json", Encoding.UTF8.GetBytes($$"""{"type":"message","content":{{content}}}"""));
        Assert.That(Answer(parser), Is.EqualTo(
            """{"role":"assistant","content":[{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"q"}},{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]},{"type":"text","text":"t"}]}"""));
    }

    [Test]
    public void CreateResponseParser_UnknownMediaType_ReturnsNull()
    {
        Assert.That(s_dialect.CreateResponseParser("text/plain"), Is.Null);
        Assert.That(s_dialect.CreateResponseParser(null), Is.Null);
    }

    [Test]
    public void WriteTurnMessages_StoredInputs_CarryNoCacheControl_ButKeepEverythingElseByteForByte()
    {
        const string body = """
            {"model":"claude","system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral"}}],
             "messages":[
              {"role":"user","content":"plain string"},
              {"role":"assistant","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"tool_use","id":"t1","name":"f","input":{"cache_control":"the tool's own data"},"cache_control":{"type":"ephemeral","ttl":"1h"}}]},
              {"role":"user","content":[{"cache_control":{"type":"ephemeral"},"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"r\u00e9","cache_control":{"type":"ephemeral"}}]}, {"type":"text", "text":"q" , "cache_control" : {"type":"ephemeral"} }]},
              {"role":"user","content":[{"cache_control":{"type":"ephemeral"}, "cache_control":{"type":"ephemeral"}}]}
             ]}
            """;
        using var parser = Parse("application/json", File.ReadAllBytes(FakeUpstream.FixturePath(Dialect, "message.json")));
        var stored = StoredMessages(body, parser);

        Assert.That(stored, Is.EqualTo("""
            [{"role":"user","content":"plain string"},{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t1","name":"f","input":{"cache_control":"the tool's own data"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"r\u00e9"}]}, {"type":"text", "text":"q" }]},{"role":"user","content":[{}]},{"role":"assistant","content":[{"type":"text","text":"Hi! My name is Claude."}]}]
            """));
        Assert.That(stored, Does.Not.Contain("sys"), "the system prompt is never stored");
    }

    [Test]
    public void StoredThinkingBlock_IsSplicedIntoTheNextRequestByteForByte()
    {
        using var parser = Parse("text/event-stream", File.ReadAllBytes(FakeUpstream.FixturePath(Dialect, "stream-thinking.sse")), chunk: 13);
        var stored = StoredMessages("""{"messages":[{"role":"user","content":"What is 27 * 453?"}]}""", parser);
        var next = Splice("""{"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"And 28 * 453?"}]}""", [stored[1..^1]]);

        Assert.That(next, Does.Contain(ThinkingBlock));
        var messages = JsonDocument.Parse(next).RootElement.GetProperty("messages");
        Assert.That(messages.GetArrayLength(), Is.EqualTo(3));
        Assert.That(messages[1].GetProperty("content")[0].GetRawText(), Is.EqualTo(ThinkingBlock));
    }

    [Test]
    public void WriteErrorAsync_WritesAnthropicsErrorShape()
    {
        foreach (var (status, type) in new[] { (400, "invalid_request_error"), (413, "request_too_large"), (500, "api_error"), (503, "api_error") })
        {
            var context = new DefaultHttpContext();
            var body = new MemoryStream();
            context.Response.Body = body;
            s_dialect.WriteErrorAsync(context.Response, status, "invalid_session_id", "The X-Session-Id header is bad.", CancellationToken.None).GetAwaiter().GetResult();

            Assert.That(context.Response.StatusCode, Is.EqualTo(status));
            Assert.That(context.Response.ContentType, Is.EqualTo("application/json"));
            Assert.That(Encoding.UTF8.GetString(body.ToArray()), Is.EqualTo(
                $$$"""{"type":"error","error":{"type":"{{{type}}}","message":"The X-Session-Id header is bad."}}"""));
        }
    }

    [Test]
    public void ReadThenWrite_AnthropicConversation_KeepsTextImagesToolCallsAndResults()
    {
        const string stored = """
            [{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ+Sk"}},{"type":"image","source":{"type":"url","url":"https://example.com/cat.png"}}]},
             {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"A cat. Let me check the weather."},{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"location":"Paris"}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":[{"type":"text","text":"Sunny"}],"is_error":false},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"doc"}}]},
             {"role":"assistant","content":"It is sunny."},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_02","content":"boom","is_error":true}]}]
            """;
        var drops = new Drops();
        var model = new List<ChatMessage>();
        s_dialect.ReadMessages(Encoding.UTF8.GetBytes(stored), model, drops);

        Assert.That(model.Select(m => m.Role), Is.EqualTo(new[] { ChatRole.User, ChatRole.Assistant, ChatRole.User, ChatRole.Assistant, ChatRole.User }));
        Assert.That(model[0].Parts, Is.EqualTo(new ChatPart[]
        {
            new TextPart("What is in this image?"), new ImagePart("image/jpeg", "/9j/4AAQ+Sk", null), new ImagePart(null, null, "https://example.com/cat.png"),
        }));
        Assert.That(model[1].Parts[1], Is.EqualTo(new ToolCallPart("toolu_01", "get_weather", """{"location":"Paris"}""")));
        Assert.That(model[2].Parts, Is.EqualTo(new ChatPart[] { new ToolResultPart("toolu_01", null, "Sunny", false) }));
        Assert.That(model[4].Parts, Is.EqualTo(new ChatPart[] { new ToolResultPart("toolu_02", null, "boom", true) }));
        Assert.That(drops.Kinds, Is.EqualTo(new[] { DropKind.Thinking, DropKind.Other }));

        var written = Write(model, drops);
        Assert.That(JsonNode.DeepEquals(JsonNode.Parse(written), JsonNode.Parse("""
            [{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ+Sk"}},{"type":"image","source":{"type":"url","url":"https://example.com/cat.png"}}]},
             {"role":"assistant","content":[{"type":"text","text":"A cat. Let me check the weather."},{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"location":"Paris"}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"Sunny"}]},
             {"role":"assistant","content":[{"type":"text","text":"It is sunny."}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_02","content":"boom","is_error":true}]}]
            """)), Is.True, written);
        Assert.That(drops.Kinds, Has.Count.EqualTo(2), "the writer carried everything the model held");
    }

    [Test]
    public void Convert_OpenAIChatConversation_GivesAStructurallyValidMessagesArray()
    {
        const string openAi = """
            {"role":"user","content":[{"type":"text","text":"Look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call.1:a","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}},{"id":"call 2","type":"function","function":{"name":"get_time","arguments":"not json"}}]},
            {"role":"tool","tool_call_id":"call.1:a","content":"Sunny"},
            {"role":"tool","tool_call_id":"call 2","content":"noon"},
            {"role":"user","content":"Thanks"},
            {"role":"assistant","content":""},
            {"role":"user","content":"Again?"},
            {"role":"assistant","content":"Sure."},
            {"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/dog.jpg"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_3","type":"function","function":{"name":"noop","arguments":""}}]}
            """;
        var converter = new Converter(new DialectRegistry(), new MnemoMetrics());
        var elements = converter.Convert(s_dialect, [new ForeignTurn(DialectId.OpenAIChat, Encoding.UTF8.GetBytes(openAi), "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"u8.ToArray())]);
        var written = "[" + Encoding.UTF8.GetString(elements) + "]";

        AssertValidMessages(written, lastToolUsesOpen: true);
        Assert.That(JsonNode.DeepEquals(JsonNode.Parse(written), JsonNode.Parse("""
            [{"role":"user","content":[{"type":"text","text":"Look"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]},
             {"role":"assistant","content":[{"type":"tool_use","id":"call_1_a","name":"get_weather","input":{"location":"Paris"}},{"type":"tool_use","id":"call_2","name":"get_time","input":{}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1_a","content":"Sunny"},{"type":"tool_result","tool_use_id":"call_2","content":"noon"},{"type":"text","text":"Thanks"},{"type":"text","text":"Again?"}]},
             {"role":"assistant","content":[{"type":"text","text":"Sure."}]},
             {"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/dog.jpg"}}]},
             {"role":"assistant","content":[{"type":"tool_use","id":"call_3","name":"noop","input":{}}]}]
            """)), Is.True, written);
    }

    [Test]
    public void WriteMessages_ToolResultAfterTextInOneUserMessage_ComesFirst()
    {
        var messages = new List<ChatMessage>
        {
            new ChatMessage(ChatRole.Assistant).Add(new ToolCallPart("id with spaces", "f", "{}")),
            new ChatMessage(ChatRole.User).Add(new TextPart("and also")).Add(new ToolResultPart("id with spaces", "f", "done", false)),
        };
        var written = Write(messages, new Drops());
        AssertValidMessages(written, lastToolUsesOpen: false, allowLeadingAssistant: true);
        Assert.That(written, Is.EqualTo(
            """[{"role":"assistant","content":[{"type":"tool_use","id":"id_with_spaces","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"id_with_spaces","content":"done"},{"type":"text","text":"and also"}]}]"""));
    }

    [Test]
    public void WriteMessages_AToolResultWithNoCallToPairWith_IsLeftOutAndCounted()
    {
        var drops = new Drops();
        var messages = new List<ChatMessage>
        {
            new ChatMessage(ChatRole.User).Add(new ToolResultPart(null, null, "orphan", false)).Add(new TextPart("And now?")),
        };

        var written = Write(messages, drops);

        Assert.That(written, Does.Not.Contain("tool_result").And.Contain("And now?"));
        Assert.That(drops.Kinds, Is.EqualTo(new[] { DropKind.Other }));
    }

    [Test]
    public void WriteMessages_WhatTheApiCannotTake_IsReported()
    {
        var drops = new Drops();
        var messages = new List<ChatMessage>
        {
            new ChatMessage(ChatRole.User).Add(new TextPart("hi")).Add(new ToolCallPart("x", "f", "{}")),
            new ChatMessage(ChatRole.Assistant).Add(new ImagePart(null, null, "https://example.com/a.png")).Add(new TextPart("ok")).Add(new ToolCallPart("y", "g", "[1]")),
        };
        var written = Write(messages, drops);
        Assert.That(written, Is.EqualTo(
            """[{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"assistant","content":[{"type":"text","text":"ok"},{"type":"tool_use","id":"y","name":"g","input":{}}]}]"""));
        Assert.That(drops.Kinds, Is.EquivalentTo(new[] { DropKind.Other, DropKind.Image, DropKind.Other }));
    }

    /// <summary>Anthropic's rules: alternating roles from the user, tool_result blocks first and answering the previous message's tool_use blocks, ids of the allowed alphabet, object inputs.</summary>
    private static void AssertValidMessages(string json, bool lastToolUsesOpen, bool allowLeadingAssistant = false)
    {
        var messages = JsonDocument.Parse(json).RootElement.EnumerateArray().ToList();
        Assert.That(messages, Is.Not.Empty);
        if (!allowLeadingAssistant)
        {
            Assert.That(messages[0].GetProperty("role").GetString(), Is.EqualTo("user"));
        }

        var open = new List<string>();
        for (var i = 0; i < messages.Count; i++)
        {
            var role = messages[i].GetProperty("role").GetString();
            if (i > 0)
            {
                Assert.That(role, Is.Not.EqualTo(messages[i - 1].GetProperty("role").GetString()), $"message {i} repeats the role");
            }

            var blocks = messages[i].GetProperty("content").EnumerateArray().ToList();
            Assert.That(blocks, Is.Not.Empty, $"message {i} is empty");
            if (role == "user")
            {
                var results = blocks.TakeWhile(b => b.GetProperty("type").GetString() == "tool_result").Select(b => b.GetProperty("tool_use_id").GetString()!).ToList();
                Assert.That(blocks.Skip(results.Count).Any(b => b.GetProperty("type").GetString() == "tool_result"), Is.False, $"message {i}: tool results first");
                Assert.That(results, Is.EquivalentTo(open), $"message {i} answers exactly the calls before it");
                open.Clear();
            }
            else
            {
                Assert.That(open, Is.Empty, $"message {i}: calls left unanswered");
                foreach (var use in blocks.Where(b => b.GetProperty("type").GetString() == "tool_use"))
                {
                    Assert.That(use.GetProperty("id").GetString(), Does.Match("^[a-zA-Z0-9_-]+$"));
                    Assert.That(use.GetProperty("input").ValueKind, Is.EqualTo(JsonValueKind.Object));
                    open.Add(use.GetProperty("id").GetString()!);
                }
            }

            foreach (var text in blocks.Where(b => b.GetProperty("type").GetString() == "text"))
            {
                Assert.That(text.GetProperty("text").GetString(), Is.Not.Empty, $"message {i}: empty text block");
            }
        }

        Assert.That(open.Count > 0, Is.EqualTo(lastToolUsesOpen));
    }

    private sealed class Drops : IDropSink
    {
        public List<DropKind> Kinds { get; } = [];

        public void Dropped(DropKind kind) => Kinds.Add(kind);
    }

    private static string Write(List<ChatMessage> messages, IDropSink drops) => DialectHarness.Write(s_dialect, messages, drops);

    private static byte[] Sse(params (string Event, string Data)[] events) =>
        Encoding.UTF8.GetBytes(string.Concat(events.Select(e => $"event: {e.Event}\ndata: {e.Data}\n\n")));

    private static ResponseParser Parse(string mediaType, byte[] bytes, int chunk = 1 << 20) => DialectHarness.Parse(s_dialect, mediaType, bytes, chunk);

    private static string Answer(ResponseParser parser) => DialectHarness.Answer(parser);

    /// <summary>The stored form of a turn: the request's inputs and the parsed answer, as a JSON array.</summary>
    private static string StoredMessages(string body, ResponseParser parser)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var plan = new SplicePlan();
        Assert.That(s_dialect.ParseRequest(bytes, fullHistory: false, plan), Is.EqualTo(ParseResult.Splice));
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            s_dialect.WriteTurnMessages(writer, bytes, plan, parser);
            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string Compact(string json) => DialectHarness.Compact(json);

    private static string[] Inputs(string body, SplicePlan plan) =>
        plan.Inputs.Select(r => JsonDocument.Parse(body[r]).RootElement.GetProperty("role").GetString()!).ToArray();

    private static string Splice(string body, string[] storedTurns) => DialectHarness.Splice(s_dialect, body, storedTurns);
}
