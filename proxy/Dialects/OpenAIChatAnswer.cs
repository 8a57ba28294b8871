using System.Text.Json;
using Mnemo.Proxy.Buffers;

namespace Mnemo.Proxy.Dialects;

/// <summary>The assistant message of a Chat Completions answer, kept as raw escaped JSON and written back as a valid input message.</summary>
/// <remarks>
/// Only fields that Chat Completions accepts on an input assistant message are kept: response-only fields such as
/// <c>annotations</c> or vLLM's <c>reasoning_content</c> would make the next request fail validation.
/// </remarks>
internal sealed class OpenAIChatAnswer : IDisposable
{
    private RawJsonString? _content;
    private RawJsonString? _refusal;
    private PooledBuffer? _rawToolCalls;
    private List<StreamedToolCall>? _toolCalls;

    public int Bytes => (_content?.Length ?? 0) + (_refusal?.Length ?? 0) + (_rawToolCalls?.Length ?? 0) + ToolCallBytes();

    /// <summary>
    /// Reads a <c>content</c> or <c>refusal</c> property (the reader on its name) of a message or a delta, appending
    /// a string value and skipping a null. False, with the reader unmoved, for any other property.
    /// </summary>
    public bool TryReadText(ref Utf8JsonReader reader)
    {
        var isContent = reader.ValueTextEquals("content"u8);
        if (!isContent && !reader.ValueTextEquals("refusal"u8))
        {
            return false;
        }

        reader.Read();
        if (reader.TokenType == JsonTokenType.String)
        {
            var text = isContent ? (_content ??= new RawJsonString(1024)) : (_refusal ??= new RawJsonString(64));
            text.Append(ref reader);
        }
        else
        {
            reader.Skip();
        }

        return true;
    }

    public void SetToolCalls(ReadOnlySpan<byte> rawArray) => (_rawToolCalls ??= new PooledBuffer(rawArray.Length)).Set(rawArray);

    public StreamedToolCall ToolCall(int index)
    {
        _toolCalls ??= new List<StreamedToolCall>(1);
        foreach (var call in _toolCalls)
        {
            if (call.Index == index)
            {
                return call;
            }
        }

        var created = new StreamedToolCall(index);
        _toolCalls.Add(created);
        return created;
    }

    public void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("role"u8, "assistant"u8);
        writer.WritePropertyName("content"u8);
        if (_content is null && _rawToolCalls is null && _toolCalls is not { Count: > 0 })
        {
            // Chat Completions refuses an assistant message with null content and no tool calls.
            writer.WriteStringValue(""u8);
        }
        else if (_content is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            _content.Write(writer);
        }

        if (_refusal is not null)
        {
            writer.WritePropertyName("refusal"u8);
            _refusal.Write(writer);
        }

        if (_rawToolCalls is not null)
        {
            writer.WritePropertyName("tool_calls"u8);
            writer.WriteRawValue(_rawToolCalls.Span, skipInputValidation: true);
        }
        else if (_toolCalls is { Count: > 0 })
        {
            writer.WritePropertyName("tool_calls"u8);
            writer.WriteStartArray();
            _toolCalls.Sort(static (a, b) => a.Index.CompareTo(b.Index));
            foreach (var call in _toolCalls)
            {
                call.Write(writer);
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    public void Dispose()
    {
        _content?.Dispose();
        _refusal?.Dispose();
        _rawToolCalls?.Dispose();
        if (_toolCalls is not null)
        {
            foreach (var call in _toolCalls)
            {
                call.Dispose();
            }
        }

        _content = null;
        _refusal = null;
        _rawToolCalls = null;
        _toolCalls = null;
    }

    private int ToolCallBytes()
    {
        var total = 0;
        if (_toolCalls is not null)
        {
            foreach (var call in _toolCalls)
            {
                total += call.Bytes;
            }
        }

        return total;
    }
}

/// <summary>A tool call assembled from <c>delta.tool_calls</c> fragments sharing one index.</summary>
internal sealed class StreamedToolCall(int index) : IDisposable
{
    private readonly RawJsonString _id = new(48);
    private readonly RawJsonString _name = new(32);
    private readonly RawJsonString _arguments = new(128);
    private RawJsonString? _type;

    public int Index { get; } = index;

    public int Bytes => _id.Length + _name.Length + _arguments.Length;

    // Some servers repeat the id and name in every fragment, OpenAI sends them once: the first value wins.
    public void SetId(ref Utf8JsonReader reader)
    {
        if (_id.IsEmpty)
        {
            _id.Append(ref reader);
        }
    }

    public void SetName(ref Utf8JsonReader reader)
    {
        if (_name.IsEmpty)
        {
            _name.Append(ref reader);
        }
    }

    public void AppendArguments(ref Utf8JsonReader reader) => _arguments.Append(ref reader);

    public void SetType(ref Utf8JsonReader reader)
    {
        // The type arrives whole in the first fragment; later fragments repeat nothing.
        if (_type is null)
        {
            _type = new RawJsonString(16);
            _type.Append(ref reader);
        }
    }

    public void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WritePropertyName("id"u8);
        _id.Write(writer);
        writer.WritePropertyName("type"u8);
        if (_type is null)
        {
            writer.WriteStringValue("function"u8);
        }
        else
        {
            _type.Write(writer);
        }

        writer.WriteStartObject("function"u8);
        writer.WritePropertyName("name"u8);
        _name.Write(writer);
        writer.WritePropertyName("arguments"u8);
        _arguments.Write(writer);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    public void Dispose()
    {
        _id.Dispose();
        _name.Dispose();
        _arguments.Dispose();
        _type?.Dispose();
    }
}
