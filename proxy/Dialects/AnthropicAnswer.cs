using System.Text.Json;
using Mnemo.Proxy.Buffers;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// The content blocks of a Messages answer, kept as raw escaped JSON and written back as a valid input
/// <c>{"role":"assistant","content":[…]}</c> message.
/// </summary>
/// <remarks>
/// Only what a request accepts is kept: a text block loses its response-only <c>citations</c>, a tool_use block keeps
/// <c>type</c>, <c>id</c>, <c>name</c>, <c>input</c>, <c>caller</c> and <c>toolset_name</c> (the input block's fields).
/// Thinking blocks keep their signatures byte for byte: Claude needs them back to continue a tool loop.
/// Server tool blocks (<c>server_tool_use</c>, <c>web_search_tool_result</c>, …) are kept as they came.
/// </remarks>
internal sealed class AnthropicAnswer : IDisposable
{
    private readonly List<AnthropicBlock> _blocks = new(2);

    public int Bytes
    {
        get
        {
            var total = 0;
            foreach (var block in _blocks)
            {
                total += block.Bytes;
            }

            return total;
        }
    }

    /// <summary>Adds the block whose whole JSON object is <paramref name="block"/> (a <c>content_block_start</c>'s or a response's content element).</summary>
    public AnthropicBlock Add(long index, ReadOnlySpan<byte> block)
    {
        var created = AnthropicBlock.Read(index, block);
        _blocks.Add(created);
        return created;
    }

    /// <summary>The block a streamed delta refers to, or null when no block of that index started.</summary>
    public AnthropicBlock? Find(long index)
    {
        // Deltas almost always address the block that started last.
        for (var i = _blocks.Count - 1; i >= 0; i--)
        {
            if (_blocks[i].Index == index)
            {
                return _blocks[i];
            }
        }

        return null;
    }

    /// <summary>Writes the assistant message; nothing when no block carries content (an empty message would be rejected).</summary>
    public void Write(Utf8JsonWriter writer)
    {
        var any = false;
        foreach (var block in _blocks)
        {
            any |= !block.IsEmpty;
        }

        if (!any)
        {
            return;
        }

        writer.WriteStartObject();
        writer.WriteString("role"u8, "assistant"u8);
        writer.WriteStartArray("content"u8);
        foreach (var block in _blocks)
        {
            if (!block.IsEmpty)
            {
                block.Write(writer);
            }
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    public void Dispose()
    {
        foreach (var block in _blocks)
        {
            block.Dispose();
        }

        _blocks.Clear();
    }
}

internal enum AnthropicBlockKind
{
    Text,
    Thinking,
    RedactedThinking,
    ToolUse,

    /// <summary>Any other block (server tools and their results): kept as it came, its <c>input</c> assembled when streamed.</summary>
    Other,
}

/// <summary>One content block of an answer, assembled from its start and its deltas.</summary>
internal sealed class AnthropicBlock : IDisposable
{
    private static readonly byte[] s_emptyObject = "{}"u8.ToArray();

    // Text, thinking or redacted data, escaped as on the wire.
    private RawJsonString? _text;
    private RawJsonString? _signature;

    // A tool_use or other block's whole object as it started.
    private PooledBuffer? _raw;

    // The streamed input: input_json_delta fragments decoded and joined, the JSON text of the input object.
    private PooledBuffer? _input;

    private AnthropicBlock(long index, AnthropicBlockKind kind)
    {
        Index = index;
        Kind = kind;
    }

    public long Index { get; }

    public AnthropicBlockKind Kind { get; }

    public int Bytes => (_text?.Length ?? 0) + (_signature?.Length ?? 0) + (_raw?.Length ?? 0) + (_input?.Length ?? 0);

    /// <summary>A text block without text: the API rejects empty text blocks, so it is not written.</summary>
    public bool IsEmpty => Kind == AnthropicBlockKind.Text && (_text is null || _text.IsEmpty);

    public static AnthropicBlock Read(long index, ReadOnlySpan<byte> json)
    {
        var kind = KindOf(json);
        var block = new AnthropicBlock(index, kind);
        if (kind is AnthropicBlockKind.ToolUse or AnthropicBlockKind.Other)
        {
            block._raw = new PooledBuffer(json.Length);
            block._raw.Append(json);
            return block;
        }

        var reader = new Utf8JsonReader(json);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var target = kind switch
            {
                AnthropicBlockKind.Text when reader.ValueTextEquals("text"u8) => block._text ??= new RawJsonString(1024),
                AnthropicBlockKind.Thinking when reader.ValueTextEquals("thinking"u8) => block._text ??= new RawJsonString(1024),
                AnthropicBlockKind.Thinking when reader.ValueTextEquals("signature"u8) => block._signature ??= new RawJsonString(512),
                AnthropicBlockKind.RedactedThinking when reader.ValueTextEquals("data"u8) => block._text ??= new RawJsonString(512),
                _ => null,
            };
            reader.Read();
            if (target is not null && reader.TokenType == JsonTokenType.String)
            {
                target.Append(ref reader);
            }
            else
            {
                reader.Skip();
            }
        }

        return block;
    }

    /// <summary>Appends a <c>text_delta</c>'s text or a <c>thinking_delta</c>'s thinking (the reader on the string).</summary>
    public void AppendText(ref Utf8JsonReader reader)
    {
        if (Kind is AnthropicBlockKind.Text or AnthropicBlockKind.Thinking)
        {
            (_text ??= new RawJsonString(1024)).Append(ref reader);
        }
    }

    public void AppendSignature(ref Utf8JsonReader reader)
    {
        if (Kind == AnthropicBlockKind.Thinking)
        {
            (_signature ??= new RawJsonString(512)).Append(ref reader);
        }
    }

    /// <summary>Appends an <c>input_json_delta</c>'s <c>partial_json</c> (the reader on the string), decoded: the input is JSON text inside a JSON string.</summary>
    public void AppendInput(ref Utf8JsonReader reader)
    {
        if (Kind is not (AnthropicBlockKind.ToolUse or AnthropicBlockKind.Other))
        {
            return;
        }

        var input = _input ??= new PooledBuffer(256);

        // Unescaping never lengthens a string; each fragment is a whole JSON string, so fragments decode one by one.
        var written = reader.CopyString(input.GetSpan(reader.ValueSpan.Length));
        input.Advance(written);
    }

    public void Write(Utf8JsonWriter writer)
    {
        switch (Kind)
        {
            case AnthropicBlockKind.Text:
                writer.WriteStartObject();
                writer.WriteString("type"u8, "text"u8);
                writer.WritePropertyName("text"u8);
                _text!.Write(writer);
                writer.WriteEndObject();
                break;
            case AnthropicBlockKind.Thinking:
                writer.WriteStartObject();
                writer.WriteString("type"u8, "thinking"u8);
                writer.WritePropertyName("thinking"u8);
                WriteString(writer, _text);
                writer.WritePropertyName("signature"u8);
                WriteString(writer, _signature);
                writer.WriteEndObject();
                break;
            case AnthropicBlockKind.RedactedThinking:
                writer.WriteStartObject();
                writer.WriteString("type"u8, "redacted_thinking"u8);
                writer.WritePropertyName("data"u8);
                WriteString(writer, _text);
                writer.WriteEndObject();
                break;
            default:
                WriteObject(writer);
                break;
        }
    }

    public void Dispose()
    {
        _text?.Dispose();
        _signature?.Dispose();
        _raw?.Dispose();
        _input?.Dispose();
        _text = _signature = null;
        _raw = _input = null;
    }

    private static void WriteString(Utf8JsonWriter writer, RawJsonString? value)
    {
        if (value is null)
        {
            writer.WriteStringValue(""u8);
        }
        else
        {
            value.Write(writer);
        }
    }

    /// <summary>A tool_use block with only the fields an input block accepts, or another block whole; a streamed input replaces the start's.</summary>
    private void WriteObject(Utf8JsonWriter writer)
    {
        var json = _raw!.Span;
        var reader = new Utf8JsonReader(json);
        reader.Read();
        var toolUse = Kind == AnthropicBlockKind.ToolUse;
        var wroteInput = false;
        writer.WriteStartObject();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isInput = reader.ValueTextEquals("input"u8);
            var keep = isInput || !toolUse
                || reader.ValueTextEquals("type"u8) || reader.ValueTextEquals("id"u8) || reader.ValueTextEquals("name"u8)
                || reader.ValueTextEquals("caller"u8) || reader.ValueTextEquals("toolset_name"u8);
            var name = reader.ValueIsEscaped ? reader.GetString() : null;
            var plainName = reader.ValueSpan;
            reader.Read();
            var start = (int)reader.TokenStartIndex;
            reader.Skip();
            if (!keep)
            {
                continue;
            }

            if (name is null)
            {
                writer.WritePropertyName(plainName);
            }
            else
            {
                writer.WritePropertyName(name);
            }

            if (isInput)
            {
                WriteInput(writer, json[start..(int)reader.BytesConsumed]);
                wroteInput = true;
            }
            else
            {
                writer.WriteRawValue(json[start..(int)reader.BytesConsumed], skipInputValidation: true);
            }
        }

        if (toolUse && !wroteInput)
        {
            writer.WritePropertyName("input"u8);
            WriteInput(writer, s_emptyObject);
        }

        writer.WriteEndObject();
    }

    private void WriteInput(Utf8JsonWriter writer, ReadOnlySpan<byte> started)
    {
        if (_input is null)
        {
            writer.WriteRawValue(started, skipInputValidation: true);
            return;
        }

        // An input cut short (max_tokens) or empty (a tool without parameters) is replayed as {}: the API takes only an object.
        writer.WriteRawValue(IsObject(_input.Span) ? _input.Span : s_emptyObject, skipInputValidation: true);
    }

    private static bool IsObject(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            reader.Skip();
            return !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static AnthropicBlockKind KindOf(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isType = reader.ValueTextEquals("type"u8);
            reader.Read();
            if (isType && reader.TokenType == JsonTokenType.String)
            {
                return reader.ValueTextEquals("text"u8) ? AnthropicBlockKind.Text
                    : reader.ValueTextEquals("thinking"u8) ? AnthropicBlockKind.Thinking
                    : reader.ValueTextEquals("redacted_thinking"u8) ? AnthropicBlockKind.RedactedThinking
                    : reader.ValueTextEquals("tool_use"u8) ? AnthropicBlockKind.ToolUse
                    : AnthropicBlockKind.Other;
            }

            reader.Skip();
        }

        return AnthropicBlockKind.Other;
    }
}

/// <summary>
/// Messages usage, as <c>message_start</c> gives it and <c>message_delta</c> updates it (its counts are cumulative, so a
/// later value replaces an earlier one).
/// </summary>
internal struct AnthropicUsage
{
    private long _input;
    private long _output;
    private long _cacheRead;
    private long _cacheWrite;

    public AnthropicUsage()
    {
        _input = _output = _cacheRead = _cacheWrite = -1;
    }

    /// <summary>
    /// Normalised: <c>input_tokens</c> counts only what follows the last cache breakpoint, so the whole prompt is it plus
    /// the tokens read from and written to the cache.
    /// </summary>
    public readonly TokenUsage Value => new(
        _input < 0 ? -1 : _input + Math.Max(0, _cacheRead) + Math.Max(0, _cacheWrite),
        _output,
        _cacheRead,
        _cacheWrite);

    /// <summary>Reads a usage object (the reader on its start); counts it lacks or gives as null keep their earlier values.</summary>
    public void Read(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            ref var target = ref _input;
            if (reader.ValueTextEquals("output_tokens"u8))
            {
                target = ref _output;
            }
            else if (reader.ValueTextEquals("cache_read_input_tokens"u8))
            {
                target = ref _cacheRead;
            }
            else if (reader.ValueTextEquals("cache_creation_input_tokens"u8))
            {
                target = ref _cacheWrite;
            }
            else if (!reader.ValueTextEquals("input_tokens"u8))
            {
                reader.Read();
                reader.Skip();
                continue;
            }

            reader.Read();
            if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value))
            {
                target = value;
            }
            else
            {
                reader.Skip();
            }
        }
    }
}
