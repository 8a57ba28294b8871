using System.Text.Json;
using Mnemo.Proxy.Buffers;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// The opt-in cache breakpoint on injected history for Anthropic's Messages API
/// (<c>Mnemo:Memory:AnthropicCacheBreakpoint</c>): a <c>cache_control</c> on the last content block of the last injected
/// message, so the provider caches the prompt up to the end of the history and the next request of the session reads it
/// from the cache instead of paying for it again.
/// </summary>
/// <remarks>
/// Anthropic allows four breakpoints per request; the client's own are counted first and none is added when they use
/// all four. Stored turns never carry a breakpoint (the capture strips them), so only this request's history has one.
/// </remarks>
internal static class AnthropicBreakpoint
{
    public const int MaxBreakpoints = 4;

    /// <summary>The <c>cache_control</c> properties anywhere in the request body (outside strings).</summary>
    public static int Count(ReadOnlySpan<byte> body)
    {
        var count = 0;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 128 });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("cache_control"u8))
                {
                    count++;
                }
            }
        }
        catch (JsonException)
        {
            // The body was accepted by the dialect's parser; anything unreadable here adds no breakpoint.
            return MaxBreakpoints;
        }

        return count;
    }

    /// <summary>
    /// The segment (comma-joined Messages-format messages, no brackets) with a breakpoint on its last message's last
    /// content block (a string content becomes one text block); the segment unchanged when it cannot be read.
    /// </summary>
    public static ReadOnlyMemory<byte> OnLast(ReadOnlyMemory<byte> segment)
    {
        var array = new byte[segment.Length + 2];
        array[0] = (byte)'[';
        segment.Span.CopyTo(array.AsSpan(1));
        array[^1] = (byte)']';
        try
        {
            using var document = JsonDocument.Parse(array);
            var messages = document.RootElement;
            var count = messages.GetArrayLength();
            if (count == 0 || messages[count - 1] is not { ValueKind: JsonValueKind.Object } last)
            {
                return segment;
            }

            // Everything before the last message stays byte for byte: the prefix the cache was written for.
            var lastStart = LastElementStart(array);
            using var buffer = new PooledBuffer(segment.Length + 64);
            buffer.Append(array.AsSpan(1, lastStart - 1));
            using (var writer = new Utf8JsonWriter(buffer))
            {
                WriteWithBreakpoint(writer, last);
            }

            return buffer.ToArray();
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return segment;
        }
    }

    private static void WriteWithBreakpoint(Utf8JsonWriter writer, JsonElement message)
    {
        writer.WriteStartObject();
        foreach (var property in message.EnumerateObject())
        {
            if (!property.NameEquals("content"u8))
            {
                property.WriteTo(writer);
                continue;
            }

            writer.WritePropertyName("content"u8);
            writer.WriteStartArray();
            if (property.Value.ValueKind == JsonValueKind.String)
            {
                writer.WriteStartObject();
                writer.WriteString("type"u8, "text"u8);
                writer.WritePropertyName("text"u8);
                property.Value.WriteTo(writer);
                Breakpoint(writer);
                writer.WriteEndObject();
            }
            else
            {
                var blocks = property.Value.GetArrayLength();
                var index = 0;
                foreach (var block in property.Value.EnumerateArray())
                {
                    if (++index < blocks || block.ValueKind != JsonValueKind.Object)
                    {
                        block.WriteTo(writer);
                        continue;
                    }

                    writer.WriteStartObject();
                    foreach (var field in block.EnumerateObject())
                    {
                        if (!field.NameEquals("cache_control"u8))
                        {
                            field.WriteTo(writer);
                        }
                    }

                    Breakpoint(writer);
                    writer.WriteEndObject();
                }
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    private static void Breakpoint(Utf8JsonWriter writer)
    {
        writer.WritePropertyName("cache_control"u8);
        writer.WriteStartObject();
        writer.WriteString("type"u8, "ephemeral"u8);
        writer.WriteEndObject();
    }

    /// <summary>Where the last element of a JSON array (given whole) begins.</summary>
    private static int LastElementStart(ReadOnlySpan<byte> array)
    {
        var reader = new Utf8JsonReader(array, new JsonReaderOptions { MaxDepth = 128 });
        reader.Read();
        var start = 1;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            start = (int)reader.TokenStartIndex;
            reader.Skip();
        }

        return start;
    }
}
