using System.Text.Json;
using Mnemo.Proxy.Context;

namespace Mnemo.Proxy.History;

/// <summary>
/// The stored form of a turn, one Redis list element:
/// <c>{"id":"…","ts":unix-ms,"d":"dialect","tok":estimate,"usage":{…},"messages":[…]}</c>.
/// Messages are kept in the dialect's own request format so they splice back without conversion.
/// </summary>
internal static class TurnCodec
{
    private static readonly JsonWriterOptions s_writerOptions = new() { SkipValidation = true };

    public static string NewId() => Guid.CreateVersion7().ToString("N");

    /// <summary>Writes a turn element; <paramref name="writeMessages"/> writes the elements of the messages array.</summary>
    /// <remarks>
    /// <c>ml</c>, the byte length of the messages array, comes right before it so a reader can take the array by offset
    /// instead of tokenizing it: the read path locates twenty of these per request.
    /// </remarks>
    public static byte[] Encode<TState>(
        string id, long timestampMs, string dialect, int tokens, ReadOnlySpan<byte> usage, TState state, Action<Utf8JsonWriter, TState> writeMessages)
    {
        using var messages = new PooledBuffer(1024);
        using (var writer = new Utf8JsonWriter(messages, s_writerOptions))
        {
            writer.WriteStartArray();
            writeMessages(writer, state);
            writer.WriteEndArray();
        }

        using var buffer = new PooledBuffer(messages.Length + 256);
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("id"u8, id);
            writer.WriteNumber("ts"u8, timestampMs);
            writer.WriteString("d"u8, dialect);
            writer.WriteNumber("tok"u8, tokens);
            if (!usage.IsEmpty)
            {
                writer.WritePropertyName("usage"u8);
                writer.WriteRawValue(usage, skipInputValidation: true);
            }

            writer.WriteNumber("ml"u8, messages.Length);
            writer.WritePropertyName("messages"u8);
            writer.WriteRawValue(messages.Span, skipInputValidation: true);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>Locates the parts of a stored element; false for an element this version cannot use.</summary>
    public static bool TryRead(ReadOnlyMemory<byte> payload, out StoredTurn turn)
    {
        turn = default;
        var span = payload.Span;
        var reader = new Utf8JsonReader(span);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            Range id = default, messages = default;
            bool hasId = false, hasMessages = false;
            int tokens = 0, messagesLength = -1;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped)
                    {
                        return false;
                    }

                    var start = (int)reader.TokenStartIndex + 1;
                    id = new Range(start, start + reader.ValueSpan.Length);
                    hasId = true;
                }
                else if (reader.ValueTextEquals("tok"u8))
                {
                    reader.Read();
                    _ = reader.TryGetInt32(out tokens);
                }
                else if (reader.ValueTextEquals("ml"u8))
                {
                    reader.Read();
                    _ = reader.TryGetInt32(out messagesLength);
                }
                else if (reader.ValueTextEquals("messages"u8))
                {
                    var start = (int)reader.BytesConsumed;
                    while (start < span.Length && span[start] != (byte)'[')
                    {
                        start++;
                    }

                    var end = start + messagesLength;
                    if (messagesLength >= 2 && end <= span.Length && span[end - 1] == (byte)']')
                    {
                        // Taken by offset: the array is this writer's own output, sized when it was written.
                        messages = new Range(start + 1, end - 1);
                        hasMessages = true;
                        break;
                    }

                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return false;
                    }

                    start = (int)reader.TokenStartIndex + 1;
                    reader.Skip();
                    messages = new Range(start, (int)reader.TokenStartIndex);
                    hasMessages = true;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (!hasId || !hasMessages)
            {
                return false;
            }

            turn = new StoredTurn(payload, id, messages, tokens);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
