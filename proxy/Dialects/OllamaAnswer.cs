using System.Text.Json;
using Mnemo.Proxy.Buffers;

namespace Mnemo.Proxy.Dialects;

/// <summary>The assistant message of an Ollama chat answer, kept as raw escaped JSON and written back as a valid input message.</summary>
/// <remarks>
/// Ollama takes <c>thinking</c> and <c>tool_calls</c> on an input assistant message, so both are kept: the model sees its
/// own reasoning and calls on the next turn as it would with a client that resends them. Tool calls arrive whole (never in
/// fragments), so each is kept exactly as sent, its <c>id</c> and <c>function.index</c> included.
/// </remarks>
internal sealed class OllamaAnswer : IDisposable
{
    private RawJsonString? _content;
    private RawJsonString? _thinking;
    private PooledBuffer? _toolCalls;

    public int Bytes => (_content?.Length ?? 0) + (_thinking?.Length ?? 0) + (_toolCalls?.Length ?? 0);

    /// <summary>Reads a <c>message</c> object (the reader on its start) of a stream line or a whole answer; <paramref name="json"/> is the reader's input.</summary>
    public void ReadMessage(ref Utf8JsonReader reader, ReadOnlySpan<byte> json)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("content"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    (_content ??= new RawJsonString(1024)).Append(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("thinking"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    (_thinking ??= new RawJsonString(1024)).Append(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    var start = (int)reader.TokenStartIndex;
                    var isCall = reader.TokenType == JsonTokenType.StartObject;
                    reader.Skip();
                    if (isCall)
                    {
                        AddToolCall(json[start..(int)reader.BytesConsumed]);
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    public void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("role"u8, "assistant"u8);
        writer.WritePropertyName("content"u8);
        if (_content is null)
        {
            writer.WriteStringValue(""u8);
        }
        else
        {
            _content.Write(writer);
        }

        // Ollama sends thinking only when there is some; an empty one is left out the same way.
        if (_thinking is { IsEmpty: false })
        {
            writer.WritePropertyName("thinking"u8);
            _thinking.Write(writer);
        }

        if (_toolCalls is not null)
        {
            writer.WritePropertyName("tool_calls"u8);
            _toolCalls.Append((byte)']');
            writer.WriteRawValue(_toolCalls.Span, skipInputValidation: true);
            _toolCalls.Advance(-1);
        }

        writer.WriteEndObject();
    }

    public void Dispose()
    {
        _content?.Dispose();
        _thinking?.Dispose();
        _toolCalls?.Dispose();
        _content = null;
        _thinking = null;
        _toolCalls = null;
    }

    private void AddToolCall(ReadOnlySpan<byte> call)
    {
        if (_toolCalls is null)
        {
            _toolCalls = new PooledBuffer(call.Length + 2);
            _toolCalls.Append((byte)'[');
        }
        else
        {
            _toolCalls.Append((byte)',');
        }

        _toolCalls.Append(call);
    }
}
