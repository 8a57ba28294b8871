using System.Text.Json;
using Mnemo.Proxy.Buffers;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// The output items of a completed Responses answer, turned into the input items that replay them: kept as raw escaped
/// JSON, converted once when the answer is read.
/// </summary>
/// <remarks>
/// Only what the API accepts back as input is kept. Response-only fields (<c>id</c> and <c>status</c> of messages and
/// calls, <c>annotations</c>, <c>logprobs</c>) are dropped; reasoning is kept only with its <c>encrypted_content</c>,
/// without which it cannot be replayed when the provider stores nothing; hosted tool calls are left out.
/// </remarks>
internal sealed class OpenAIResponsesAnswer : IDisposable
{
    private static readonly JsonWriterOptions s_writerOptions = new() { SkipValidation = true };

    private PooledBuffer? _items;
    private bool _messageOpen;
    private List<string>? _ids;

    /// <summary>Bytes of answer text and call arguments kept.</summary>
    public int Bytes { get; private set; }

    /// <summary>
    /// The provider's ids of the kept items, in their order (<c>""</c> where one had none): the stored items leave
    /// them out, but a client may refer to one of them (<c>item_reference</c>) instead of resending it.
    /// </summary>
    public string[] ItemIds => _ids is null ? [] : [.. _ids];

    /// <summary>
    /// Reads a Response object (the reader on its start, left on its end): its usage and, when its status is
    /// <c>completed</c>, its output. Returns why the answer cannot be recorded, or null.
    /// </summary>
    public string? ReadResponse(ref Utf8JsonReader reader, ReadOnlySpan<byte> json, out TokenUsage usage)
    {
        usage = TokenUsage.Unknown;
        var completed = false;
        int outputStart = -1, outputEnd = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("status"u8))
            {
                reader.Read();
                completed = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("completed"u8);
                reader.Skip();
            }
            else if (reader.ValueTextEquals("output"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    outputStart = (int)reader.TokenStartIndex;
                    reader.Skip();
                    outputEnd = (int)reader.BytesConsumed;
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                usage = OpenAIUsage.Read(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (!completed)
        {
            return "response status is not completed";
        }

        if (outputStart < 0)
        {
            return "response has no output array";
        }

        Convert(json[outputStart..outputEnd]);
        return null;
    }

    /// <summary>Writes the kept items as elements of the request's <c>input</c> array.</summary>
    public void Write(Utf8JsonWriter writer)
    {
        if (_items is null)
        {
            return;
        }

        var items = _items.Span;
        var reader = new Utf8JsonReader(items);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            var start = (int)reader.TokenStartIndex;
            reader.Skip();
            writer.WriteRawValue(items[start..(int)reader.BytesConsumed], skipInputValidation: true);
        }
    }

    public void Dispose()
    {
        _items?.Dispose();
        _items = null;
    }

    private void Convert(ReadOnlySpan<byte> output)
    {
        var items = _items ??= new PooledBuffer(Math.Min(output.Length, 64 * 1024));
        items.Clear();
        Bytes = 0;
        _ids?.Clear();
        using var writer = new Utf8JsonWriter(items, s_writerOptions);
        writer.WriteStartArray();
        var reader = new Utf8JsonReader(output);
        reader.Read();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType == JsonTokenType.StartObject)
            {
                Item(ref reader, output, writer);
            }
            else
            {
                reader.Skip();
            }
        }

        writer.WriteEndArray();
    }

    private void Item(ref Utf8JsonReader reader, ReadOnlySpan<byte> json, Utf8JsonWriter writer)
    {
        // Fields come in any order (the API sends "id" before "type"): locate them first, write once the type is known.
        var item = default(ItemFields);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                item.Type = reader.TokenType != JsonTokenType.String ? ItemType.Other
                    : reader.ValueTextEquals("message"u8) ? ItemType.Message
                    : reader.ValueTextEquals("function_call"u8) ? ItemType.FunctionCall
                    : reader.ValueTextEquals("reasoning"u8) ? ItemType.Reasoning
                    : ItemType.Other;
                reader.Skip();
            }
            else if (reader.ValueTextEquals("content"u8))
            {
                item.Content = RawValue(ref reader);
            }
            else if (reader.ValueTextEquals("call_id"u8))
            {
                item.CallId = RawString(ref reader);
            }
            else if (reader.ValueTextEquals("name"u8))
            {
                item.Name = RawString(ref reader);
            }
            else if (reader.ValueTextEquals("arguments"u8))
            {
                item.Arguments = RawString(ref reader);
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                item.Id = RawString(ref reader);
            }
            else if (reader.ValueTextEquals("summary"u8))
            {
                item.Summary = RawValue(ref reader);
            }
            else if (reader.ValueTextEquals("encrypted_content"u8))
            {
                item.EncryptedContent = RawString(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        switch (item.Type)
        {
            case ItemType.Message:
                Message(json, item, writer);
                if (_messageOpen)
                {
                    Kept(json, item.Id);
                }

                break;
            case ItemType.FunctionCall when item.CallId is { } callId && item.Name is { } name:
                writer.WriteStartObject();
                writer.WriteString("type"u8, "function_call"u8);
                Raw(writer, "call_id"u8, json[callId]);
                Raw(writer, "name"u8, json[name]);
                var arguments = item.Arguments is { } a ? json[a] : "\"{}\""u8;
                Raw(writer, "arguments"u8, arguments);
                writer.WriteEndObject();
                Bytes += arguments.Length - 2;
                Kept(json, item.Id);
                break;
            case ItemType.Reasoning when item.EncryptedContent is { } encrypted:
                writer.WriteStartObject();
                writer.WriteString("type"u8, "reasoning"u8);
                if (item.Id is { } id)
                {
                    Raw(writer, "id"u8, json[id]);
                }

                if (item.Summary is { } summary && json[summary][0] == (byte)'[')
                {
                    Raw(writer, "summary"u8, json[summary]);
                }
                else
                {
                    writer.WriteStartArray("summary"u8);
                    writer.WriteEndArray();
                }

                Raw(writer, "encrypted_content"u8, json[encrypted]);
                writer.WriteEndObject();
                Kept(json, item.Id);
                break;
        }
    }

    private void Kept(ReadOnlySpan<byte> json, Range? id)
    {
        var text = "";
        if (id is { } range)
        {
            var reader = new Utf8JsonReader(json[range]);
            text = reader.Read() ? reader.GetString() ?? "" : "";
        }

        (_ids ??= []).Add(text);
    }

    private void Message(ReadOnlySpan<byte> json, in ItemFields item, Utf8JsonWriter writer)
    {
        if (item.Content is not { } range)
        {
            return;
        }

        // The message is opened at its first kept part: one with nothing left to replay is left out.
        var content = json[range];
        _messageOpen = false;
        if (content[0] == (byte)'"')
        {
            Part(writer, "output_text"u8, "text"u8, content);
        }
        else if (content[0] == (byte)'[')
        {
            var reader = new Utf8JsonReader(content);
            reader.Read();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ContentPart(ref reader, content, writer);
                }
                else
                {
                    reader.Skip();
                }
            }
        }

        if (_messageOpen)
        {
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
    }

    private void ContentPart(ref Utf8JsonReader reader, ReadOnlySpan<byte> json, Utf8JsonWriter writer)
    {
        // output_text keeps its text, refusal its refusal; annotations and logprobs exist only in responses.
        var type = ItemType.Other;
        Range? text = null, refusal = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                type = reader.TokenType != JsonTokenType.String ? ItemType.Other
                    : reader.ValueTextEquals("output_text"u8) ? ItemType.OutputText
                    : reader.ValueTextEquals("refusal"u8) ? ItemType.Refusal
                    : ItemType.Other;
                reader.Skip();
            }
            else if (reader.ValueTextEquals("text"u8))
            {
                text = RawString(ref reader);
            }
            else if (reader.ValueTextEquals("refusal"u8))
            {
                refusal = RawString(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (type == ItemType.OutputText && text is { } t)
        {
            Part(writer, "output_text"u8, "text"u8, json[t]);
        }
        else if (type == ItemType.Refusal && refusal is { } r)
        {
            Part(writer, "refusal"u8, "refusal"u8, json[r]);
        }
    }

    private void Part(Utf8JsonWriter writer, ReadOnlySpan<byte> type, ReadOnlySpan<byte> property, ReadOnlySpan<byte> rawString)
    {
        if (!_messageOpen)
        {
            _messageOpen = true;
            writer.WriteStartObject();
            writer.WriteString("type"u8, "message"u8);
            writer.WriteString("role"u8, "assistant"u8);
            writer.WriteStartArray("content"u8);
        }

        writer.WriteStartObject();
        writer.WriteString("type"u8, type);
        Raw(writer, property, rawString);
        writer.WriteEndObject();
        Bytes += rawString.Length - 2;
    }

    private static void Raw(Utf8JsonWriter writer, ReadOnlySpan<byte> property, ReadOnlySpan<byte> rawValue)
    {
        writer.WritePropertyName(property);
        writer.WriteRawValue(rawValue, skipInputValidation: true);
    }

    /// <summary>The raw bytes of a property's value (the reader on its name, left on the value's end).</summary>
    private static Range RawValue(ref Utf8JsonReader reader)
    {
        reader.Read();
        var start = (int)reader.TokenStartIndex;
        reader.Skip();
        return new Range(start, (int)reader.BytesConsumed);
    }

    /// <summary>The raw, still escaped, string token of a property (the reader on its name); null for any other value.</summary>
    private static Range? RawString(ref Utf8JsonReader reader)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.String)
        {
            reader.Skip();
            return null;
        }

        return new Range((int)reader.TokenStartIndex, (int)reader.BytesConsumed);
    }

    private enum ItemType
    {
        Other,
        Message,
        FunctionCall,
        Reasoning,
        OutputText,
        Refusal,
    }

    private struct ItemFields
    {
        public ItemType Type;
        public Range? Content;
        public Range? CallId;
        public Range? Name;
        public Range? Arguments;
        public Range? Id;
        public Range? Summary;
        public Range? EncryptedContent;
    }
}
