using System.Text.Json;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Dialects;

/// <summary>OpenAI Chat Completions (<c>/v1/chat/completions</c>), as served by OpenAI, vLLM, llama.cpp and most gateways.</summary>
internal sealed class OpenAIChatDialect : Dialect
{
    public override DialectId Id => DialectId.OpenAIChat;

    public override string PathSuffix => "/chat/completions";

    protected override ParseResult ParseBody(ReadOnlySpan<byte> body, bool fullHistory, SplicePlan plan) =>
        JsonMessages.Parse(body, "messages"u8, "'messages'", fullHistory, plan);

    public override Task WriteErrorAsync(HttpResponse response, int statusCode, string code, string message, CancellationToken cancellationToken) =>
        OpenAIErrors.WriteAsync(response, statusCode, code, message, cancellationToken);

    public override ResponseParser? CreateResponseParser(string? mediaType) => mediaType switch
    {
        "text/event-stream" => new OpenAIChatStreamParser(),
        "application/json" => new OpenAIChatJsonParser(),
        _ => null,
    };

    // A "tool" message answers a call of the assistant message before it.
    public override bool ContinuesToolExchange(ReadOnlySpan<byte> firstInputItem) => PropertyIs(firstInputItem, "role"u8, "tool"u8);

    // "tool_calls", and the role "tool".
    public override bool MayHaveTools(ReadOnlySpan<byte> elements) => elements.IndexOf("\"tool"u8) >= 0;

    public override void ReadMessages(ReadOnlySpan<byte> messagesArray, List<ChatMessage> into, IDropSink drops)
    {
        var reader = new Utf8JsonReader(messagesArray);
        using var document = JsonDocument.ParseValue(ref reader);
        foreach (var message in document.RootElement.EnumerateArray())
        {
            if (message.ValueKind != JsonValueKind.Object)
            {
                drops.Dropped(DropKind.Other);
                continue;
            }

            switch (StringOf(message, "role"u8))
            {
                case "assistant":
                    var answer = new ChatMessage(ChatRole.Assistant);
                    if (message.TryGetProperty("content"u8, out var content))
                    {
                        ReadContent(content, answer, drops);
                    }

                    if (StringOf(message, "refusal"u8) is { } refusal)
                    {
                        answer.Add(new TextPart(refusal));
                    }

                    if (message.TryGetProperty("tool_calls"u8, out var calls) && calls.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var call in calls.EnumerateArray())
                        {
                            if (call.ValueKind == JsonValueKind.Object && call.TryGetProperty("function"u8, out var function) && function.ValueKind == JsonValueKind.Object)
                            {
                                answer.Add(new ToolCallPart(StringOf(call, "id"u8), StringOf(function, "name"u8) ?? "", Arguments(function, drops)));
                            }
                            else
                            {
                                drops.Dropped(DropKind.Other);
                            }
                        }
                    }

                    into.Add(answer);
                    break;
                case "tool":
                    var result = new ToolResultPart(
                        StringOf(message, "tool_call_id"u8),
                        null,
                        message.TryGetProperty("content"u8, out var output) ? ChatText.Of(output, drops) : "",
                        false);
                    ChatText.UserMessage(into).Add(result);
                    break;
                default:
                    // user, and the legacy "function" role read as a user's words.
                    var user = new ChatMessage(ChatRole.User);
                    if (message.TryGetProperty("content"u8, out var userContent))
                    {
                        ReadContent(userContent, user, drops);
                    }

                    into.Add(user);
                    break;
            }
        }
    }

    public override void WriteMessages(Utf8JsonWriter writer, IReadOnlyList<ChatMessage> messages, IDropSink drops)
    {
        foreach (var message in messages)
        {
            if (message.Role == ChatRole.Assistant)
            {
                WriteAssistant(writer, message, drops);
                continue;
            }

            // Tool results become tool messages, in order; what else the user said follows them in one user message.
            foreach (var part in message.Parts)
            {
                if (part is ToolCallPart)
                {
                    drops.Dropped(DropKind.Other);
                }
                else if (part is ToolResultPart result)
                {
                    if (result.CallId is null)
                    {
                        // Nothing to answer (ToolIds.Pair found no call): a tool message without an id fails the whole request.
                        drops.Dropped(DropKind.Other);
                        continue;
                    }

                    writer.WriteStartObject();
                    writer.WriteString("role"u8, "tool"u8);
                    writer.WriteString("tool_call_id"u8, result.CallId);
                    writer.WriteString("content"u8, result.Content);
                    writer.WriteEndObject();
                }
            }

            if (message.Parts.Exists(static p => p is TextPart or ImagePart))
            {
                writer.WriteStartObject();
                writer.WriteString("role"u8, "user"u8);
                writer.WriteStartArray("content"u8);
                foreach (var part in message.Parts)
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
                            writer.WriteStartObject();
                            writer.WriteString("type"u8, "image_url"u8);
                            writer.WriteStartObject("image_url"u8);
                            writer.WriteString("url"u8, image.AsUrl());
                            writer.WriteEndObject();
                            writer.WriteEndObject();
                            break;
                    }
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }
        }
    }

    private static void WriteAssistant(Utf8JsonWriter writer, ChatMessage message, IDropSink drops)
    {
        writer.WriteStartObject();
        writer.WriteString("role"u8, "assistant"u8);
        var hasCalls = false;
        foreach (var part in message.Parts)
        {
            switch (part)
            {
                case ToolCallPart:
                    hasCalls = true;
                    break;
                case ImagePart:
                    // An assistant's content is text and refusals only.
                    drops.Dropped(DropKind.Image);
                    break;
                case ToolResultPart:
                    drops.Dropped(DropKind.Other);
                    break;
            }
        }

        var text = ChatText.Join(message);
        if (text is not null)
        {
            writer.WriteString("content"u8, text);
        }
        else if (hasCalls)
        {
            writer.WriteNull("content"u8);
        }
        else
        {
            // E.g. an answer that was all thinking: content may be null only beside tool calls, so say nothing instead.
            writer.WriteString("content"u8, ""u8);
        }

        if (hasCalls)
        {
            writer.WriteStartArray("tool_calls"u8);
            foreach (var part in message.Parts)
            {
                if (part is ToolCallPart call)
                {
                    writer.WriteStartObject();
                    writer.WriteString("id"u8, call.Id);
                    writer.WriteString("type"u8, "function"u8);
                    writer.WriteStartObject("function"u8);
                    writer.WriteString("name"u8, call.Name);
                    writer.WriteString("arguments"u8, call.Arguments);
                    writer.WriteEndObject();
                    writer.WriteEndObject();
                }
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    private static void ReadContent(JsonElement content, ChatMessage into, IDropSink drops)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            into.Add(new TextPart(content.GetString()!));
            return;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            return;
        }

        foreach (var part in content.EnumerateArray())
        {
            var type = part.ValueKind == JsonValueKind.Object ? StringOf(part, "type"u8) : null;
            if (type is "text" or "refusal" && StringOf(part, type == "text" ? "text"u8 : "refusal"u8) is { } text)
            {
                into.Add(new TextPart(text));
            }
            else if (type == "image_url" && part.TryGetProperty("image_url"u8, out var image) && image.ValueKind == JsonValueKind.Object
                && StringOf(image, "url"u8) is { Length: > 0 } url)
            {
                into.Add(ImagePart.FromUrl(url));
            }
            else
            {
                // input_audio, file: nothing the other APIs take in the same form.
                drops.Dropped(DropKind.Other);
            }
        }
    }

    /// <summary>
    /// The arguments as the shared model promises them, a JSON object's text: a string holding an object is kept as it
    /// is (spacing included, so a same-dialect round trip is exact); none, an empty string or an object value (some
    /// gateways) are read as such; anything else (arguments cut short by <c>finish_reason: length</c>) cannot be carried
    /// to an API that takes an object, so it becomes <c>{}</c> and is counted.
    /// </summary>
    private static string Arguments(JsonElement function, IDropSink drops)
    {
        if (!function.TryGetProperty("arguments"u8, out var arguments))
        {
            return "{}";
        }

        switch (arguments.ValueKind)
        {
            case JsonValueKind.Object:
                return arguments.GetRawText();
            case JsonValueKind.String:
                var text = arguments.GetString()!;
                if (string.IsNullOrWhiteSpace(text))
                {
                    return "{}";
                }

                if (IsObject(text))
                {
                    return text;
                }

                break;
            case JsonValueKind.Null:
                return "{}";
        }

        drops.Dropped(DropKind.Other);
        return "{}";
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

    /// <summary>A property's string value, or null when it is missing or not a string (stored bodies are whatever the upstream accepted).</summary>
    private static string? StringOf(JsonElement element, ReadOnlySpan<byte> name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}

/// <summary>OpenAI's error shape, <c>{"error":{"message","type","param","code"}}</c>, for both OpenAI dialects.</summary>
internal static class OpenAIErrors
{
    public static Task WriteAsync(HttpResponse response, int statusCode, string code, string message, CancellationToken cancellationToken)
    {
        response.StatusCode = statusCode;
        response.ContentType = "application/json";
        using var writer = new Utf8JsonWriter(response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteStartObject("error"u8);
        writer.WriteString("message"u8, message);
        writer.WriteString("type"u8, statusCode >= 500 ? "server_error" : "invalid_request_error");
        writer.WriteNull("param"u8);
        writer.WriteString("code"u8, code);
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.Flush();
        return response.BodyWriter.FlushAsync(cancellationToken).AsTask();
    }
}
