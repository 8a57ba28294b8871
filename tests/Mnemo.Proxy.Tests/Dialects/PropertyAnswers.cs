using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Dialects;

namespace Mnemo.Proxy.Tests.Dialects;

/// <summary>Builds each dialect's upstream answer, streamed or whole, from generated text deltas and tool calls.</summary>
internal static class Answers
{
    public static Answer Make(Dialect dialect, bool stream, (string Text, string Literal)[] deltas, string[] callTexts, int split, string[] ends, int input, int output)
    {
        var text = string.Concat(deltas.Select(d => d.Text));
        var full = deltas.Length == 0 ? "\"\"" : PropertyGen.Literal(text, deltas[0].Literal.StartsWith("\"\\u", StringComparison.Ordinal) ? 2 : 0);
        var arguments = callTexts.Select(t => "{\"city\":" + JsonSerializer.Serialize(t) + "}").ToArray();
        var id = dialect.Id.ToString();
        if (!stream)
        {
            var json = id switch
            {
                "AnthropicMessages" => AnthropicJson(deltas.Length > 0 ? full : null, arguments, input, output),
                "OpenAIResponses" => ResponsesObject(deltas.Length > 0 ? full : null, arguments, input, output),
                "OllamaChat" => $$$$"""{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":{{{{full}}}}{{{{OllamaCalls(arguments)}}}}},"done":true,"done_reason":"stop","prompt_eval_count":{{{{input}}}},"eval_count":{{{{output}}}}}""",
                _ => $$$$"""{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":{{{{(deltas.Length > 0 || arguments.Length == 0 ? full : "null")}}}}{{{{ChatCalls(arguments)}}}}},"finish_reason":"stop"}],"usage":{"prompt_tokens":{{{{input}}}},"completion_tokens":{{{{output}}}},"total_tokens":{{{{input + output}}}}}}""",
            };
            return new Answer(dialect, "application/json", Encoding.UTF8.GetBytes(json), text, arguments);
        }

        var events = id switch
        {
            "AnthropicMessages" => AnthropicEvents(deltas, arguments, split, input, output),
            "OpenAIResponses" => ResponsesEvents(deltas, full, arguments, split, input, output),
            "OllamaChat" => OllamaLines(deltas, arguments, input, output),
            _ => ChatEvents(deltas, arguments, split, input, output),
        };

        // Each line ends as the generator chose (LF, CRLF or CR); an SSE event ends with an empty line.
        var builder = new StringBuilder();
        var line = 0;
        foreach (var (name, data) in events)
        {
            if (name is not null)
            {
                builder.Append("event: ").Append(name).Append(ends[line++ % ends.Length]);
            }

            // The empty line ends as its data line did: a CR then an LF would be one CRLF, no empty line.
            var end = ends[line++ % ends.Length];
            builder.Append(id == "OllamaChat" ? "" : "data: ").Append(data).Append(end);
            if (id != "OllamaChat")
            {
                builder.Append(end);
            }
        }

        var mediaType = id == "OllamaChat" ? "application/x-ndjson" : "text/event-stream";
        return new Answer(dialect, mediaType, Encoding.UTF8.GetBytes(builder.ToString()), text, arguments);
    }

    /// <summary>A JSON text cut into <paramref name="parts"/> fragments, never inside a surrogate pair.</summary>
    private static List<string> Fragments(string json, int parts)
    {
        var list = new List<string>();
        var size = Math.Max(1, json.Length / parts);
        var start = 0;
        while (start < json.Length)
        {
            var end = Math.Min(json.Length, start + size);
            if (end < json.Length && char.IsLowSurrogate(json[end]))
            {
                end++;
            }

            list.Add(json[start..end]);
            start = end;
        }

        return list;
    }

    private static IEnumerable<(string?, string)> ChatEvents((string Text, string Literal)[] deltas, string[] arguments, int split, int input, int output)
    {
        const string Head = """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":""";
        yield return (null, Head + """{"role":"assistant","content":""},"finish_reason":null}]}""");
        foreach (var delta in deltas)
        {
            yield return (null, Head + $$$$"""{"content":{{{{delta.Literal}}}}},"finish_reason":null}]}""");
        }

        for (var k = 0; k < arguments.Length; k++)
        {
            yield return (null, Head + $$$$"""{"tool_calls":[{"index":{{{{k}}}},"id":"call_{{{{k}}}}","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}""");
            foreach (var fragment in Fragments(arguments[k], split))
            {
                yield return (null, Head + $$$$"""{"tool_calls":[{"index":{{{{k}}}},"function":{"arguments":{{{{JsonSerializer.Serialize(fragment)}}}}}}]},"finish_reason":null}]}""");
            }
        }

        yield return (null, Head + $$$$"""{},"finish_reason":"{{{{(arguments.Length > 0 ? "tool_calls" : "stop")}}}}"}]}""");
        yield return (null, $$$$"""{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":{{{{input}}}},"completion_tokens":{{{{output}}}},"total_tokens":{{{{input + output}}}}}}""");
        yield return (null, "[DONE]");
    }

    private static string ChatCalls(string[] arguments) =>
        arguments.Length == 0 ? "" : ",\"tool_calls\":[" + string.Join(",", arguments.Select((a, k) =>
            $$$$"""{"id":"call_{{{{k}}}}","type":"function","function":{"name":"get_weather","arguments":{{{{JsonSerializer.Serialize(a)}}}}}}""")) + "]";

    private static IEnumerable<(string?, string)> AnthropicEvents((string Text, string Literal)[] deltas, string[] arguments, int split, int input, int output)
    {
        yield return ("message_start", $$$$"""{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":{{{{input}}}},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}""");
        var index = 0;
        if (deltas.Length > 0)
        {
            yield return ("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}""");
            yield return ("ping", """{"type": "ping"}""");
            foreach (var delta in deltas)
            {
                yield return ("content_block_delta", $$$$"""{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":{{{{delta.Literal}}}}}}""");
            }

            yield return ("content_block_stop", """{"type":"content_block_stop","index":0}""");
            index++;
        }

        for (var k = 0; k < arguments.Length; k++, index++)
        {
            yield return ("content_block_start", $$$$"""{"type":"content_block_start","index":{{{{index}}}},"content_block":{"type":"tool_use","id":"toolu_{{{{k}}}}","name":"get_weather","input":{}}}""");
            foreach (var fragment in Fragments(arguments[k], split))
            {
                yield return ("content_block_delta", $$$$"""{"type":"content_block_delta","index":{{{{index}}}},"delta":{"type":"input_json_delta","partial_json":{{{{JsonSerializer.Serialize(fragment)}}}}}}""");
            }

            yield return ("content_block_stop", $$$$"""{"type":"content_block_stop","index":{{{{index}}}}}""");
        }

        yield return ("message_delta", $$$$"""{"type":"message_delta","delta":{"stop_reason":"{{{{(arguments.Length > 0 ? "tool_use" : "end_turn")}}}}","stop_sequence":null},"usage":{"output_tokens":{{{{output}}}}}}""");
        yield return ("message_stop", """{"type":"message_stop"}""");
    }

    private static string AnthropicJson(string? text, string[] arguments, int input, int output)
    {
        var blocks = new List<string>();
        if (text is not null)
        {
            blocks.Add($$$$"""{"type":"text","text":{{{{text}}}}}""");
        }

        blocks.AddRange(arguments.Select((a, k) => $$$$"""{"type":"tool_use","id":"toolu_{{{{k}}}}","name":"get_weather","input":{{{{a}}}}}"""));
        return $$$$"""{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{{{{string.Join(",", blocks)}}}}],"stop_reason":"{{{{(arguments.Length > 0 ? "tool_use" : "end_turn")}}}}","stop_sequence":null,"usage":{"input_tokens":{{{{input}}}},"output_tokens":{{{{output}}}}}}""";
    }

    private static IEnumerable<(string?, string)> ResponsesEvents((string Text, string Literal)[] deltas, string full, string[] arguments, int split, int input, int output)
    {
        var sequence = 0;
        yield return ("response.created", $$$$"""{"type":"response.created","sequence_number":{{{{sequence++}}}},"response":{"id":"resp_1","object":"response","status":"in_progress","output":[],"usage":null}}""");
        foreach (var delta in deltas)
        {
            yield return ("response.output_text.delta", $$$$"""{"type":"response.output_text.delta","sequence_number":{{{{sequence++}}}},"item_id":"msg_1","output_index":0,"content_index":0,"delta":{{{{delta.Literal}}}}}""");
        }

        for (var k = 0; k < arguments.Length; k++)
        {
            foreach (var fragment in Fragments(arguments[k], split))
            {
                yield return ("response.function_call_arguments.delta", $$$$"""{"type":"response.function_call_arguments.delta","sequence_number":{{{{sequence++}}}},"item_id":"fc_{{{{k}}}}","output_index":{{{{k + 1}}}},"delta":{{{{JsonSerializer.Serialize(fragment)}}}}}""");
            }
        }

        yield return ("response.completed", $$$$"""{"type":"response.completed","sequence_number":{{{{sequence}}}},"response":{{{{ResponsesObject(deltas.Length > 0 ? full : null, arguments, input, output)}}}}}""");
    }

    private static string ResponsesObject(string? text, string[] arguments, int input, int output)
    {
        var items = new List<string>();
        if (text is not null)
        {
            items.Add($$$$"""{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":{{{{text}}}},"annotations":[]}]}""");
        }

        items.AddRange(arguments.Select((a, k) => $$$$"""{"type":"function_call","id":"fc_{{{{k}}}}","call_id":"call_{{{{k}}}}","name":"get_weather","arguments":{{{{JsonSerializer.Serialize(a)}}}},"status":"completed"}"""));
        return $$$$"""{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"gpt-4o-mini","output":[{{{{string.Join(",", items)}}}}],"usage":{"input_tokens":{{{{input}}}},"input_tokens_details":{"cached_tokens":0},"output_tokens":{{{{output}}}},"output_tokens_details":{"reasoning_tokens":0},"total_tokens":{{{{input + output}}}}}}""";
    }

    private static IEnumerable<(string?, string)> OllamaLines((string Text, string Literal)[] deltas, string[] arguments, int input, int output)
    {
        foreach (var delta in deltas)
        {
            yield return (null, $$$$"""{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":{{{{delta.Literal}}}}},"done":false}""");
        }

        foreach (var a in arguments)
        {
            yield return (null, $$$$"""{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{{{{a}}}}}}]},"done":false}""");
        }

        yield return (null, $$$$"""{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":{{{{input}}}},"eval_count":{{{{output}}}}}""");
    }

    private static string OllamaCalls(string[] arguments) =>
        arguments.Length == 0 ? "" : ",\"tool_calls\":[" + string.Join(",", arguments.Select(a => $$$$"""{"function":{"name":"get_weather","arguments":{{{{a}}}}}}""")) + "]";
}
