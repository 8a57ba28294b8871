using System.Text.Json;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Dialects;

/// <summary>Ollama's native chat API (<c>/api/chat</c>): streams NDJSON unless the request says <c>"stream": false</c>.</summary>
internal sealed class OllamaChatDialect : Dialect
{
    public override DialectId Id => DialectId.OllamaChat;

    public override string PathSuffix => "/api/chat";

    protected override ParseResult ParseBody(ReadOnlySpan<byte> body, bool fullHistory, SplicePlan plan)
    {
        var result = JsonMessages.Parse(body, "messages"u8, "'messages'", fullHistory, plan);

        // An empty array asks Ollama to load (or with keep_alive 0, unload) the model, not to answer: history spliced in
        // would turn it into a chat, so it is forwarded as sent. Nothing opens or closes the insertion only when the
        // array has no element at all.
        return result.Outcome == ParseOutcome.Splice && plan.Inputs.Count == 0 && plan.Open.Length == 0 && plan.Close.Length == 0
            ? ParseResult.PassThrough
            : result;
    }

    public override Task WriteErrorAsync(HttpResponse response, int statusCode, string code, string message, CancellationToken cancellationToken)
    {
        // Ollama's errors are a bare message: {"error":"…"}.
        response.StatusCode = statusCode;
        response.ContentType = "application/json";
        using var writer = new Utf8JsonWriter(response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteString("error"u8, message);
        writer.WriteEndObject();
        writer.Flush();
        return response.BodyWriter.FlushAsync(cancellationToken).AsTask();
    }

    public override ResponseParser? CreateResponseParser(string? mediaType) => mediaType switch
    {
        "application/x-ndjson" or "application/ndjson" => new OllamaStreamParser(),
        "application/json" => new OllamaJsonParser(),
        _ => null,
    };

    // A "tool" message answers a call of the assistant message before it (by id, or by name and order).
    public override bool ContinuesToolExchange(ReadOnlySpan<byte> firstInputItem) => PropertyIs(firstInputItem, "role"u8, "tool"u8);

    // "tool_calls", and the role "tool".
    public override bool MayHaveTools(ReadOnlySpan<byte> elements) => elements.IndexOf("\"tool"u8) >= 0;

    public override void ReadMessages(ReadOnlySpan<byte> messagesArray, List<ChatMessage> into, IDropSink drops)
    {
        var reader = new Utf8JsonReader(messagesArray);
        using var document = JsonDocument.ParseValue(ref reader);
        foreach (var message in document.RootElement.EnumerateArray())
        {
            var role = message.TryGetProperty("role"u8, out var r) ? r.GetString() : null;
            switch (role)
            {
                case "assistant":
                    into.Add(ReadAssistant(message, drops));
                    break;
                case "tool":
                    ChatText.UserMessage(into).Add(new ToolResultPart(
                        OptionalString(message, "tool_call_id"u8),
                        OptionalString(message, "tool_name"u8),
                        message.TryGetProperty("content"u8, out var output) ? ChatText.Of(output, drops) : "",
                        false));
                    break;
                default:
                    var user = new ChatMessage(ChatRole.User);
                    if (message.TryGetProperty("content"u8, out var content))
                    {
                        AddText(content, user, drops);
                    }

                    if (message.TryGetProperty("images"u8, out var images) && images.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var image in images.EnumerateArray())
                        {
                            if (image.ValueKind == JsonValueKind.String && image.GetString() is { Length: > 0 } data)
                            {
                                user.Add(new ImagePart(SniffMediaType(data), data, null));
                            }
                        }
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
                if (part is ToolResultPart result)
                {
                    writer.WriteStartObject();
                    writer.WriteString("role"u8, "tool"u8);
                    writer.WriteString("content"u8, result.Content);
                    if (result.Name is not null)
                    {
                        writer.WriteString("tool_name"u8, result.Name);
                    }

                    // Ollama from v0.12.10 pairs results by this id; older servers ignore it.
                    if (result.CallId is not null)
                    {
                        writer.WriteString("tool_call_id"u8, result.CallId);
                    }

                    writer.WriteEndObject();
                }
            }

            var text = ChatText.Join(message);
            var images = 0;
            foreach (var part in message.Parts)
            {
                if (part is ImagePart image)
                {
                    if (image.Data is null)
                    {
                        // Ollama takes base64 images only; it fetches no URL.
                        drops.Dropped(DropKind.Image);
                    }
                    else
                    {
                        images++;
                    }
                }
            }

            if (text is null && images == 0)
            {
                continue;
            }

            writer.WriteStartObject();
            writer.WriteString("role"u8, "user"u8);
            writer.WriteString("content"u8, text ?? "");
            if (images > 0)
            {
                writer.WriteStartArray("images"u8);
                foreach (var part in message.Parts)
                {
                    if (part is ImagePart { Data: { } data })
                    {
                        writer.WriteStringValue(data);
                    }
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }
    }

    private static ChatMessage ReadAssistant(JsonElement message, IDropSink drops)
    {
        var answer = new ChatMessage(ChatRole.Assistant);
        if (message.TryGetProperty("content"u8, out var content))
        {
            AddText(content, answer, drops);
        }

        // The model's reasoning is its own: other APIs take none in input (or only signed, in their own form).
        if (message.TryGetProperty("thinking"u8, out var thinking) && thinking.ValueKind == JsonValueKind.String && thinking.GetString() is { Length: > 0 })
        {
            drops.Dropped(DropKind.Thinking);
        }

        if (message.TryGetProperty("images"u8, out var images) && images.ValueKind == JsonValueKind.Array && images.GetArrayLength() > 0)
        {
            drops.Dropped(DropKind.Image);
        }

        if (message.TryGetProperty("tool_calls"u8, out var calls) && calls.ValueKind == JsonValueKind.Array)
        {
            foreach (var call in calls.EnumerateArray())
            {
                if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("function"u8, out var function) || function.ValueKind != JsonValueKind.Object)
                {
                    drops.Dropped(DropKind.Other);
                    continue;
                }

                answer.Add(new ToolCallPart(
                    OptionalString(call, "id"u8),
                    OptionalString(function, "name"u8) ?? "",
                    function.TryGetProperty("arguments"u8, out var arguments) ? ArgumentsText(arguments) : "{}"));
            }
        }

        return answer;
    }

    private static void WriteAssistant(Utf8JsonWriter writer, ChatMessage message, IDropSink drops)
    {
        writer.WriteStartObject();
        writer.WriteString("role"u8, "assistant"u8);
        writer.WriteString("content"u8, ChatText.Join(message) ?? "");
        if (message.Parts.Exists(static p => p is ToolCallPart))
        {
            writer.WriteStartArray("tool_calls"u8);
            foreach (var part in message.Parts)
            {
                if (part is not ToolCallPart call)
                {
                    continue;
                }

                writer.WriteStartObject();
                if (call.Id is not null)
                {
                    writer.WriteString("id"u8, call.Id);
                }

                writer.WriteStartObject("function"u8);
                writer.WriteString("name"u8, call.Name);
                writer.WritePropertyName("arguments"u8);
                WriteArguments(writer, call.Arguments, drops);
                writer.WriteEndObject();
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    /// <summary>Ollama wants the arguments as a JSON object, where OpenAI carries them as a string that should (but need not) hold one.</summary>
    private static void WriteArguments(Utf8JsonWriter writer, string arguments, IDropSink drops)
    {
        try
        {
            using var document = JsonDocument.Parse(arguments);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                document.RootElement.WriteTo(writer);
                return;
            }
        }
        catch (JsonException)
        {
        }

        drops.Dropped(DropKind.Other);
        writer.WriteStartObject();
        writer.WriteEndObject();
    }

    private static string ArgumentsText(JsonElement arguments) => arguments.ValueKind switch
    {
        JsonValueKind.Object => arguments.GetRawText(),
        // Some clients send the OpenAI form back (a string holding the object).
        JsonValueKind.String => arguments.GetString()!,
        _ => "{}",
    };

    private static void AddText(JsonElement content, ChatMessage into, IDropSink drops)
    {
        // Ollama sends "" with every tool call; an empty text part would be rejected by APIs that forbid empty blocks.
        if (ChatText.Of(content, drops) is { Length: > 0 } text)
        {
            into.Add(new TextPart(text));
        }
    }

    private static string? OptionalString(JsonElement element, ReadOnlySpan<byte> name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>The media type of base64 image data, by the magic bytes its first characters encode; null when unknown.</summary>
    /// <remarks>WebP is <c>RIFF</c>, a size, then <c>WEBP</c>: bytes 9..11 (<c>EBP</c>) are characters 12..15.</remarks>
    internal static string? SniffMediaType(string base64) =>
        base64.StartsWith("iVBORw0KGgo", StringComparison.Ordinal) ? "image/png"
        : base64.StartsWith("/9j/", StringComparison.Ordinal) ? "image/jpeg"
        : base64.StartsWith("R0lGOD", StringComparison.Ordinal) ? "image/gif"
        : base64.StartsWith("UklGR", StringComparison.Ordinal) && base64.Length >= 16 && base64.AsSpan(12, 4).SequenceEqual("RUJQ") ? "image/webp"
        : null;
}
