using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Dialects;

/// <summary>OpenAI Responses (<c>/v1/responses</c>): history goes into the <c>input</c> items; requests chained by id are left alone.</summary>
internal sealed class OpenAIResponsesDialect : Dialect
{
    private static readonly byte[] s_open = "["u8.ToArray();
    private static readonly byte[] s_textOpen = ",{\"role\":\"user\",\"content\":"u8.ToArray();

    public override DialectId Id => DialectId.OpenAIResponses;

    public override string PathSuffix => "/responses";

    /// <summary>The summary is a developer message item, first in the history.</summary>
    public override ReadOnlySpan<byte> SummaryMessageOpen => "{\"type\":\"message\",\"role\":\"developer\",\"content\":\""u8;

    /// <summary>
    /// History goes first in <c>input</c>, after its leading system/developer messages. A plain-string <c>input</c> is
    /// replaced, once there is history, by an array of the history and the string as a user message. A request naming a
    /// <c>previous_response_id</c> or a <c>conversation</c> has its state kept by the provider: nothing is spliced into
    /// it (<see cref="SplicePlan.ProviderHeld"/>), and its items are stored as any request's are.
    /// </summary>
    protected override ParseResult ParseBody(ReadOnlySpan<byte> body, bool fullHistory, SplicePlan plan)
    {
        plan.Reset();
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 128 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return ParseResult.Invalid("The request body must be a JSON object.");
            }

            var found = false;
            var streamFound = false;
            var stateful = false;
            string? error = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("input"u8))
                {
                    if (found)
                    {
                        error ??= "The request body has more than one 'input' property.";
                    }

                    found = true;
                    reader.Read();
                    error ??= ReadInput(ref reader, body, fullHistory, plan);
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    // Two values are ambiguous: the upstream may read the other one and answer in a format we would not record.
                    if (streamFound)
                    {
                        error ??= "The request body has more than one 'stream' property.";
                    }

                    streamFound = true;
                    reader.Read();
                    if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False or JsonTokenType.Null))
                    {
                        error ??= JsonMessages.StreamNotBoolean;
                    }

                    plan.Stream = reader.TokenType == JsonTokenType.True;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("model"u8))
                {
                    JsonMessages.ReadModel(ref reader, plan);
                }
                else if (reader.ValueTextEquals("previous_response_id"u8) || reader.ValueTextEquals("conversation"u8))
                {
                    reader.Read();
                    stateful |= reader.TokenType != JsonTokenType.Null;
                    reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            // Anything after the closing brace other than whitespace is rejected by the reader here.
            while (reader.Read())
            {
            }

            // The provider holds this conversation: splicing ours in would repeat it; its new items and answer are still
            // the session's, and stored, so the conversation stays whole for the session's other requests and APIs.
            plan.ProviderHeld = stateful;
            if (stateful && !found)
            {
                // Nothing new to store (a prompt template, say): the provider's to judge, as sent.
                plan.Reset();
                return ParseResult.PassThrough;
            }

            return error is not null ? ParseResult.Invalid(error)
                : found ? ParseResult.Splice
                : ParseResult.Invalid("The request body has no 'input'.");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: a string escape that is not valid UTF-16 (a lone surrogate).
            return ParseResult.Invalid("The request body is not valid JSON.");
        }
    }

    public override Task WriteErrorAsync(HttpResponse response, int statusCode, string code, string message, CancellationToken cancellationToken) =>
        OpenAIErrors.WriteAsync(response, statusCode, code, message, cancellationToken);

    public override ResponseParser? CreateResponseParser(string? mediaType) => mediaType switch
    {
        "text/event-stream" => new OpenAIResponsesStreamParser(),
        "application/json" => new OpenAIResponsesJsonParser(),
        _ => null,
    };

    /// <summary>
    /// An output for a call the model made in the turn before: <c>function_call_output</c>, or the output of another
    /// client-run tool (<c>custom_tool_call_output</c>, <c>computer_call_output</c>, <c>local_shell_call_output</c>, …).
    /// </summary>
    public override bool ContinuesToolExchange(ReadOnlySpan<byte> firstInputItem)
    {
        var reader = new Utf8JsonReader(firstInputItem);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject
                || !MoveToProperty(ref reader, "type"u8) || reader.TokenType != JsonTokenType.String)
            {
                return false;
            }

            return reader.ValueIsEscaped
                ? reader.GetString()!.EndsWith("_call_output", StringComparison.Ordinal)
                : reader.ValueSpan.EndsWith("_call_output"u8);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    // A plain-string input is stored as the user message it stands for.
    protected override void WriteInput(Utf8JsonWriter writer, ReadOnlySpan<byte> item, SplicePlan plan)
    {
        if (!plan.InputIsText)
        {
            writer.WriteRawValue(item, skipInputValidation: true);
            return;
        }

        writer.WriteStartObject();
        writer.WriteString("role"u8, "user"u8);
        writer.WritePropertyName("content"u8);
        writer.WriteRawValue(item, skipInputValidation: true);
        writer.WriteEndObject();
    }

    // Every "…_call" and "…_call_output" item, an item's "id", and "item_reference".
    public override bool MayHaveTools(ReadOnlySpan<byte> elements) =>
        elements.IndexOf("_call"u8) >= 0 || elements.IndexOf("\"id\""u8) >= 0 || elements.IndexOf("item_reference"u8) >= 0;

    /// <summary>The <c>id</c> of each item; an <c>item_reference</c> names an item the provider stored.</summary>
    public override void ItemIds(ReadOnlySpan<byte> messagesArray, List<string> into, out bool references)
    {
        references = false;
        var reader = new Utf8JsonReader(messagesArray);
        reader.Read();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isId = reader.ValueTextEquals("id"u8);
                var isType = !isId && reader.ValueTextEquals("type"u8);
                reader.Read();
                if (isId && reader.TokenType == JsonTokenType.String)
                {
                    into.Add(reader.GetString()!);
                }
                else if (isType && reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("item_reference"u8))
                {
                    references = true;
                }
                else
                {
                    reader.Skip();
                }
            }
        }
    }

    public override void ReadMessages(ReadOnlySpan<byte> messagesArray, List<ChatMessage> into, IDropSink drops)
    {
        var reader = new Utf8JsonReader(messagesArray);
        using var document = JsonDocument.ParseValue(ref reader);
        foreach (var item in document.RootElement.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                drops.Dropped(DropKind.Other);
                continue;
            }

            var type = item.TryGetProperty("type"u8, out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            var role = item.TryGetProperty("role"u8, out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
            if (role is not null && (type is null or "message"))
            {
                var message = new ChatMessage(role == "assistant" ? ChatRole.Assistant : ChatRole.User);
                if (item.TryGetProperty("content"u8, out var content))
                {
                    ReadContent(content, message, drops);
                }

                into.Add(message);
                continue;
            }

            switch (type)
            {
                case "function_call":
                    // A call joins the assistant message before it: the text and calls of one answer, or parallel calls.
                    var answer = into.Count > 0 && into[^1].Role == ChatRole.Assistant ? into[^1] : Add(into, new ChatMessage(ChatRole.Assistant));
                    answer.Add(new ToolCallPart(
                        String(item, "call_id"u8),
                        String(item, "name"u8) ?? "",
                        String(item, "arguments"u8) ?? "{}"));
                    break;
                case "function_call_output":
                    ChatText.UserMessage(into).Add(new ToolResultPart(
                        String(item, "call_id"u8),
                        null,
                        item.TryGetProperty("output"u8, out var output) ? OutputText(output, drops) : "",
                        false));
                    break;
                case "reasoning":
                    drops.Dropped(DropKind.Reasoning);
                    break;
                default:
                    // Hosted tool calls (web search, file search, …), item references: nothing another API can replay.
                    drops.Dropped(DropKind.Other);
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
                WriteAssistant(writer, message);
                continue;
            }

            // Tool results become function_call_output items, in order; what else the user said follows them in one message.
            foreach (var part in message.Parts)
            {
                if (part is not ToolResultPart result)
                {
                    continue;
                }

                if (result.CallId is null)
                {
                    // An output with no call id is rejected by the API; one the pairing could not match has no call to answer.
                    drops.Dropped(DropKind.Other);
                    continue;
                }

                writer.WriteStartObject();
                writer.WriteString("type"u8, "function_call_output"u8);
                writer.WriteString("call_id"u8, result.CallId);
                writer.WriteString("output"u8, result.Content);
                writer.WriteEndObject();
            }

            if (!message.Parts.Exists(static p => p is TextPart or ImagePart))
            {
                continue;
            }

            writer.WriteStartObject();
            writer.WriteString("role"u8, "user"u8);
            writer.WriteStartArray("content"u8);
            foreach (var part in message.Parts)
            {
                switch (part)
                {
                    case TextPart text:
                        writer.WriteStartObject();
                        writer.WriteString("type"u8, "input_text"u8);
                        writer.WriteString("text"u8, text.Text);
                        writer.WriteEndObject();
                        break;
                    case ImagePart image:
                        writer.WriteStartObject();
                        writer.WriteString("type"u8, "input_image"u8);
                        writer.WriteString("image_url"u8, image.AsUrl());
                        writer.WriteString("detail"u8, "auto"u8);
                        writer.WriteEndObject();
                        break;
                }
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }
    }

    private static string? ReadInput(ref Utf8JsonReader reader, ReadOnlySpan<byte> body, bool fullHistory, SplicePlan plan)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                // One user message as a bare string: with history it becomes [history…, {"role":"user","content":<string>}].
                var start = (int)reader.TokenStartIndex;
                var end = (int)reader.BytesConsumed;
                var text = body[start..end];
                var close = new byte[s_textOpen.Length + text.Length + 2];
                s_textOpen.CopyTo(close, 0);
                text.CopyTo(close.AsSpan(s_textOpen.Length));
                close[^2] = (byte)'}';
                close[^1] = (byte)']';
                plan.Start = start;
                plan.End = end;
                plan.Open = s_open;
                plan.Close = close;
                plan.InputIsText = true;
                plan.AddInput(new Range(start, end), end - start);
                return null;
            case JsonTokenType.StartArray:
                return JsonMessages.ParseItems(ref reader, "'input'", fullHistory, plan, ReadItemKind);
            default:
                reader.Skip();
                return "'input' must be a string or an array.";
        }
    }

    /// <summary>
    /// Reads one input item (the reader on its start, left on its end). Items the model produced (assistant messages,
    /// reasoning, function and hosted tool calls) and references to items the provider holds (<c>item_reference</c>) mark
    /// what a full-history client resent; items without a role (<c>function_call_output</c>, …) are inputs like a user message.
    /// </summary>
    private static JsonMessages.ItemKind ReadItemKind(ref Utf8JsonReader reader)
    {
        var kind = JsonMessages.ItemKind.Input;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isRole = reader.ValueTextEquals("role"u8);
            var isType = !isRole && reader.ValueTextEquals("type"u8);
            reader.Read();
            if (reader.TokenType != JsonTokenType.String)
            {
                reader.Skip();
            }
            else if (isRole)
            {
                if (reader.ValueTextEquals("system"u8) || reader.ValueTextEquals("developer"u8))
                {
                    kind = JsonMessages.ItemKind.System;
                }
                else if (reader.ValueTextEquals("assistant"u8))
                {
                    kind = JsonMessages.ItemKind.Output;
                }
            }
            else if (isType && reader.ValueTextEquals("item_reference"u8))
            {
                kind = JsonMessages.ItemKind.Reference;
            }
            else if (isType && IsOutputType(ref reader))
            {
                kind = JsonMessages.ItemKind.Output;
            }
        }

        return kind;
    }

    public override string? ProviderReference(ReadOnlySpan<byte> item)
    {
        if (item.IndexOf("item_reference"u8) < 0)
        {
            return null;
        }

        var reader = new Utf8JsonReader(item);
        try
        {
            string? id = null;
            var reference = false;
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isId = reader.ValueTextEquals("id"u8);
                var isType = !isId && reader.ValueTextEquals("type"u8);
                reader.Read();
                if (isId && reader.TokenType == JsonTokenType.String)
                {
                    id = reader.GetString();
                }
                else if (isType && reader.TokenType == JsonTokenType.String)
                {
                    reference = reader.ValueTextEquals("item_reference"u8);
                }
                else
                {
                    reader.Skip();
                }
            }

            return reference ? id ?? "" : null;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary><c>reasoning</c> and every <c>…_call</c> (function, web search, computer, …) come from the model; <c>…_call_output</c> from the client.</summary>
    private static bool IsOutputType(ref Utf8JsonReader reader)
    {
        if (reader.ValueTextEquals("reasoning"u8))
        {
            return true;
        }

        return reader.ValueIsEscaped
            ? reader.GetString()!.EndsWith("_call", StringComparison.Ordinal)
            : reader.ValueSpan.EndsWith("_call"u8);
    }

    private static ChatMessage Add(List<ChatMessage> into, ChatMessage message)
    {
        into.Add(message);
        return message;
    }

    private static string? String(JsonElement item, ReadOnlySpan<byte> name) =>
        item.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

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
            switch (String(part, "type"u8))
            {
                case "input_text" or "output_text":
                    into.Add(new TextPart(String(part, "text"u8) ?? ""));
                    break;
                case "refusal":
                    into.Add(new TextPart(String(part, "refusal"u8) ?? ""));
                    break;
                case "input_image" when String(part, "image_url"u8) is { } url:
                    into.Add(ImagePart.FromUrl(url));
                    break;
                case "input_image":
                    // A file id names an upload in this provider's storage: no other API can fetch it.
                    drops.Dropped(DropKind.Image);
                    break;
                default:
                    // input_file, input_audio: nothing the other APIs take in the same form.
                    drops.Dropped(DropKind.Other);
                    break;
            }
        }
    }

    /// <summary>A function call's output: a string, or the text of its parts (images and files are left out).</summary>
    private static string OutputText(JsonElement output, IDropSink drops)
    {
        if (output.ValueKind != JsonValueKind.Array)
        {
            return output.ValueKind == JsonValueKind.String ? output.GetString()! : "";
        }

        var text = new StringBuilder();
        foreach (var part in output.EnumerateArray())
        {
            switch (String(part, "type"u8))
            {
                case "input_text" or "output_text":
                    text.Append(String(part, "text"u8));
                    break;
                case "input_image":
                    drops.Dropped(DropKind.Image);
                    break;
                default:
                    drops.Dropped(DropKind.Other);
                    break;
            }
        }

        return text.ToString();
    }

    private static void WriteAssistant(Utf8JsonWriter writer, ChatMessage message)
    {
        if (message.Parts.Exists(static p => p is TextPart))
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "message"u8);
            writer.WriteString("role"u8, "assistant"u8);
            writer.WriteStartArray("content"u8);
            foreach (var part in message.Parts)
            {
                if (part is TextPart text)
                {
                    writer.WriteStartObject();
                    writer.WriteString("type"u8, "output_text"u8);
                    writer.WriteString("text"u8, text.Text);
                    writer.WriteEndObject();
                }
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        foreach (var part in message.Parts)
        {
            if (part is ToolCallPart call)
            {
                writer.WriteStartObject();
                writer.WriteString("type"u8, "function_call"u8);
                writer.WriteString("call_id"u8, call.Id);
                writer.WriteString("name"u8, call.Name);
                writer.WriteString("arguments"u8, call.Arguments);
                writer.WriteEndObject();
            }
        }
    }
}
