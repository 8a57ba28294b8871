using System.Text.Json;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Dialects;

/// <summary>Anthropic Messages (<c>/v1/messages</c>): history goes first in <c>messages</c>; the top-level <c>system</c> stays as sent.</summary>
internal sealed class AnthropicMessagesDialect : Dialect
{
    public override DialectId Id => DialectId.AnthropicMessages;

    // Not "/messages": OpenAI Assistants' /v1/threads/{id}/messages would match it.
    public override string PathSuffix => "/v1/messages";

    private static readonly byte[] s_systemProperty = "\"system\":\""u8.ToArray();
    private static readonly byte[] s_systemPropertyEnd = "\","u8.ToArray();
    private static readonly byte[] s_paragraph = "\\n\\n"u8.ToArray();
    private static readonly byte[] s_quote = "\""u8.ToArray();
    private static readonly byte[] s_textBlock = "{\"type\":\"text\",\"text\":\""u8.ToArray();
    private static readonly byte[] s_nextTextBlock = ",{\"type\":\"text\",\"text\":\""u8.ToArray();
    private static readonly byte[] s_textBlockEnd = "\"}"u8.ToArray();

    /// <remarks>
    /// Also records where a rolling summary goes: appended to the top-level <c>system</c> (a paragraph of a string, or a
    /// text block after the last block), or a <c>system</c> property added first when there is none.
    /// </remarks>
    protected override ParseResult ParseBody(ReadOnlySpan<byte> body, bool fullHistory, SplicePlan plan)
    {
        var result = JsonMessages.Parse(body, "messages"u8, "'messages'", fullHistory, plan, ReadSystem);
        if (result.Outcome == ParseOutcome.Splice && plan.InstructionsAsMessage)
        {
            // No system property: one goes first in the object (the body has at least its messages after it).
            var open = body.IndexOf((byte)'{') + 1;
            plan.InstructionsAt(open, open, s_systemProperty, s_systemPropertyEnd);
        }

        return result;
    }

    private static ParseResult? ReadSystem(ref Utf8JsonReader reader, SplicePlan plan)
    {
        var isSystem = reader.ValueTextEquals("system"u8);
        reader.Read();
        if (!isSystem || !plan.InstructionsAsMessage)
        {
            reader.Skip();
            return null;
        }

        var start = (int)reader.TokenStartIndex;
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                // Before the closing quote; ValueSpan is the raw, still escaped, text.
                var quote = start + 1 + reader.ValueSpan.Length;
                plan.InstructionsAt(quote, quote, reader.ValueSpan.IsEmpty ? [] : s_paragraph, []);
                break;
            case JsonTokenType.StartArray:
                var peek = reader;
                var empty = peek.Read() && peek.TokenType == JsonTokenType.EndArray;
                reader.Skip();
                var bracket = (int)reader.TokenStartIndex;
                plan.InstructionsAt(bracket, bracket, empty ? s_textBlock : s_nextTextBlock, s_textBlockEnd);
                break;
            case JsonTokenType.Null:
                plan.InstructionsAt(start, start + 4, s_quote, s_quote);
                break;
            default:
                // A value the API does not take: the upstream rejects the request; the summary is left out.
                reader.Skip();
                plan.InstructionsAt(-1, -1, [], []);
                break;
        }

        return null;
    }

    public override Task WriteErrorAsync(HttpResponse response, int statusCode, string code, string message, CancellationToken cancellationToken)
    {
        response.StatusCode = statusCode;
        response.ContentType = "application/json";
        using var writer = new Utf8JsonWriter(response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteString("type"u8, "error"u8);
        writer.WriteStartObject("error"u8);
        writer.WriteString("type"u8, ErrorType(statusCode));
        writer.WriteString("message"u8, message);
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.Flush();
        return response.BodyWriter.FlushAsync(cancellationToken).AsTask();
    }

    public override ResponseParser? CreateResponseParser(string? mediaType) => mediaType switch
    {
        "text/event-stream" => new AnthropicStreamParser(),
        "application/json" => new AnthropicJsonParser(),
        _ => null,
    };

    /// <summary>A user message whose content starts with a <c>tool_result</c> block (results must come first, answering the previous message's <c>tool_use</c>).</summary>
    public override bool ContinuesToolExchange(ReadOnlySpan<byte> firstInputItem)
    {
        var reader = new Utf8JsonReader(firstInputItem);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            bool? user = null, result = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("role"u8))
                {
                    reader.Read();
                    user = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("user"u8);
                }
                else if (reader.ValueTextEquals("content"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        // A string content is text only.
                        return false;
                    }

                    var depth = reader.CurrentDepth;
                    result = reader.Read() && reader.TokenType == JsonTokenType.StartObject
                        && MoveToProperty(ref reader, "type"u8)
                        && reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("tool_result"u8);
                    if (result is false || user is not null)
                    {
                        return result.Value && user is true;
                    }

                    // The role follows the content: on to its end.
                    while (!(reader.TokenType == JsonTokenType.EndArray && reader.CurrentDepth == depth) && reader.Read())
                    {
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }

                if (user is not null && result is not null)
                {
                    return user.Value && result.Value;
                }
            }

            return false;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    // A request may carry at most 4 cache breakpoints: replayed history must bring none of its own.
    protected override void WriteInput(Utf8JsonWriter writer, ReadOnlySpan<byte> item, SplicePlan plan) =>
        AnthropicCacheControl.WriteWithout(writer, item);

    // "tool_use" and "tool_result" blocks.
    public override bool MayHaveTools(ReadOnlySpan<byte> elements) => elements.IndexOf("\"tool_"u8) >= 0;

    public override void ReadMessages(ReadOnlySpan<byte> messagesArray, List<ChatMessage> into, IDropSink drops)
    {
        var reader = new Utf8JsonReader(messagesArray);
        using var document = JsonDocument.ParseValue(ref reader);
        foreach (var message in document.RootElement.EnumerateArray())
        {
            var assistant = message.TryGetProperty("role"u8, out var role) && role.ValueEquals("assistant"u8);
            var read = new ChatMessage(assistant ? ChatRole.Assistant : ChatRole.User);
            if (message.TryGetProperty("content"u8, out var content))
            {
                if (content.ValueKind == JsonValueKind.String)
                {
                    read.Add(new TextPart(content.GetString()!));
                }
                else if (content.ValueKind == JsonValueKind.Array)
                {
                    foreach (var block in content.EnumerateArray())
                    {
                        ReadBlock(block, read, drops);
                    }
                }
            }

            // A message of thinking or documents only leaves nothing behind.
            if (read.Parts.Count > 0)
            {
                into.Add(read);
            }
        }
    }

    public override void WriteMessages(Utf8JsonWriter writer, IReadOnlyList<ChatMessage> messages, IDropSink drops)
    {
        // Messages must alternate: neighbours of one role merge, and a message left with nothing vanishes (so its
        // neighbours merge in turn).
        var turns = new List<(ChatRole Role, List<ChatPart> Parts)>(messages.Count);
        foreach (var message in messages)
        {
            var parts = Carried(message, drops);
            if (parts.Count == 0)
            {
                continue;
            }

            if (turns.Count > 0 && turns[^1].Role == message.Role)
            {
                turns[^1].Parts.AddRange(parts);
            }
            else
            {
                turns.Add((message.Role, parts));
            }
        }

        foreach (var (role, parts) in turns)
        {
            writer.WriteStartObject();
            writer.WriteString("role"u8, role == ChatRole.Assistant ? "assistant"u8 : "user"u8);
            writer.WriteStartArray("content"u8);

            // A user message's tool results come before anything else in it.
            foreach (var part in parts)
            {
                if (part is ToolResultPart result)
                {
                    WriteToolResult(writer, result);
                }
            }

            foreach (var part in parts)
            {
                switch (part)
                {
                    case TextPart text:
                        writer.WriteStartObject();
                        writer.WriteString("type"u8, "text"u8);
                        writer.WriteString("text"u8, text.Text);
                        writer.WriteEndObject();
                        break;
                    case ImagePart image:
                        WriteImage(writer, image);
                        break;
                    case ToolCallPart call:
                        WriteToolUse(writer, call, drops);
                        break;
                }
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }
    }

    /// <summary>A tool_use id the API accepts (<c>^[a-zA-Z0-9_-]+$</c>): other characters become '_', the same for a call and its result.</summary>
    private static string ToolUseId(string? id)
    {
        if (string.IsNullOrEmpty(id))
        {
            return "call";
        }

        return string.Create(id.Length, id, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                var c = source[i];
                span[i] = char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_';
            }
        });
    }

    private static string ErrorType(int statusCode) => statusCode switch
    {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        >= 500 => "api_error",
        _ => "invalid_request_error",
    };

    private static void ReadBlock(JsonElement block, ChatMessage into, IDropSink drops)
    {
        var type = block.TryGetProperty("type"u8, out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        switch (type)
        {
            case "text":
                into.Add(new TextPart(block.TryGetProperty("text"u8, out var text) ? text.GetString() ?? "" : ""));
                break;
            case "image" when into.Role == ChatRole.User && ReadImage(block) is { } image:
                into.Add(image);
                break;
            case "image":
                drops.Dropped(DropKind.Image);
                break;
            case "tool_use" when into.Role == ChatRole.Assistant:
                into.Add(new ToolCallPart(
                    block.TryGetProperty("id"u8, out var id) ? id.GetString() : null,
                    block.TryGetProperty("name"u8, out var name) ? name.GetString() ?? "" : "",
                    block.TryGetProperty("input"u8, out var input) && input.ValueKind == JsonValueKind.Object ? input.GetRawText() : "{}"));
                break;
            case "tool_result" when into.Role == ChatRole.User:
                into.Add(new ToolResultPart(
                    block.TryGetProperty("tool_use_id"u8, out var callId) ? callId.GetString() : null,
                    null,
                    block.TryGetProperty("content"u8, out var content) ? ChatText.Of(content, drops) : "",
                    block.TryGetProperty("is_error"u8, out var isError) && isError.ValueKind == JsonValueKind.True));
                break;
            case "thinking" or "redacted_thinking":
                drops.Dropped(DropKind.Thinking);
                break;
            default:
                // Documents, search results, server tool calls and their results: nothing the other APIs take alike.
                drops.Dropped(DropKind.Other);
                break;
        }
    }

    private static ImagePart? ReadImage(JsonElement block)
    {
        if (!block.TryGetProperty("source"u8, out var source) || !source.TryGetProperty("type"u8, out var kind))
        {
            return null;
        }

        if (kind.ValueEquals("base64"u8) && source.TryGetProperty("data"u8, out var data) && data.ValueKind == JsonValueKind.String)
        {
            return new ImagePart(source.TryGetProperty("media_type"u8, out var mediaType) ? mediaType.GetString() : null, data.GetString(), null);
        }

        if (kind.ValueEquals("url"u8) && source.TryGetProperty("url"u8, out var url) && url.ValueKind == JsonValueKind.String)
        {
            return new ImagePart(null, null, url.GetString());
        }

        // A Files API id means nothing to another provider.
        return null;
    }

    /// <summary>The parts of a message this API takes in a message of its role; the rest is reported.</summary>
    private static List<ChatPart> Carried(ChatMessage message, IDropSink drops)
    {
        var parts = new List<ChatPart>(message.Parts.Count);
        var assistant = message.Role == ChatRole.Assistant;
        foreach (var part in message.Parts)
        {
            switch (part)
            {
                // Empty text blocks are rejected.
                case TextPart text when text.Text.Length == 0:
                    break;
                case ToolResultPart { CallId: null }:
                    // No call to pair it with: a tool_result for an unknown tool_use fails the whole request.
                    drops.Dropped(DropKind.Other);
                    break;
                case TextPart:
                case ToolCallPart when assistant:
                case ToolResultPart when !assistant:
                case ImagePart when !assistant:
                    parts.Add(part);
                    break;
                case ImagePart:
                    drops.Dropped(DropKind.Image);
                    break;
                default:
                    drops.Dropped(DropKind.Other);
                    break;
            }
        }

        return parts;
    }

    private static void WriteToolResult(Utf8JsonWriter writer, ToolResultPart result)
    {
        writer.WriteStartObject();
        writer.WriteString("type"u8, "tool_result"u8);
        writer.WriteString("tool_use_id"u8, ToolUseId(result.CallId));
        if (result.Content.Length > 0)
        {
            writer.WriteString("content"u8, result.Content);
        }

        if (result.IsError)
        {
            writer.WriteBoolean("is_error"u8, true);
        }

        writer.WriteEndObject();
    }

    private static void WriteImage(Utf8JsonWriter writer, ImagePart image)
    {
        writer.WriteStartObject();
        writer.WriteString("type"u8, "image"u8);
        writer.WriteStartObject("source"u8);
        if (image.Data is not null)
        {
            writer.WriteString("type"u8, "base64"u8);
            writer.WriteString("media_type"u8, image.MediaType ?? "image/png");
            writer.WriteString("data"u8, image.Data);
        }
        else
        {
            writer.WriteString("type"u8, "url"u8);
            writer.WriteString("url"u8, image.Url);
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static void WriteToolUse(Utf8JsonWriter writer, ToolCallPart call, IDropSink drops)
    {
        writer.WriteStartObject();
        writer.WriteString("type"u8, "tool_use"u8);
        writer.WriteString("id"u8, ToolUseId(call.Id));
        writer.WriteString("name"u8, call.Name);
        writer.WritePropertyName("input"u8);
        if (string.IsNullOrWhiteSpace(call.Arguments))
        {
            // A call without arguments (some servers send "").
            writer.WriteStartObject();
            writer.WriteEndObject();
        }
        else if (IsObject(call.Arguments))
        {
            writer.WriteRawValue(call.Arguments);
        }
        else
        {
            // The API takes only an object: arguments that are not one (cut short, or a bare value) cannot be carried.
            writer.WriteStartObject();
            writer.WriteEndObject();
            drops.Dropped(DropKind.Other);
        }

        writer.WriteEndObject();
    }

    private static bool IsObject(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return document.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
