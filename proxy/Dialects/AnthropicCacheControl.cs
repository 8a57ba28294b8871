using System.Text.Json;
using Mnemo.Proxy.Buffers;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// Copies a Messages input message without its <c>cache_control</c> properties. A request may carry at most four cache
/// breakpoints; the client's breakpoints belong to the request that set them, and replaying them with the history would
/// push later requests over the limit (and move the cache prefix the client chose).
/// </summary>
/// <remarks>
/// The copy is of the original bytes with each <c>cache_control</c> property (and its separating comma) cut out, so
/// everything else, strings and signatures included, stays byte for byte. <c>cache_control</c> is removed at any depth
/// (blocks inside a <c>tool_result</c>'s content, a document's content source) except inside a tool call's
/// <c>input</c>, which is the tool's own data.
/// </remarks>
internal static class AnthropicCacheControl
{
    /// <summary>Writes <paramref name="message"/> (one JSON object) as an array element, without <c>cache_control</c>.</summary>
    public static void WriteWithout(Utf8JsonWriter writer, ReadOnlySpan<byte> message)
    {
        var cuts = new Cuts();
        // The depth the request was accepted with: a message that parsed there must copy here.
        var reader = new Utf8JsonReader(message, new JsonReaderOptions { MaxDepth = 128 });
        reader.Read();
        if (reader.TokenType == JsonTokenType.StartObject)
        {
            ScanObject(ref reader, ref cuts);
        }

        if (cuts.Count == 0)
        {
            writer.WriteRawValue(message, skipInputValidation: true);
            return;
        }

        using var copy = new PooledBuffer(message.Length);
        var from = 0;
        foreach (var (start, end) in cuts.List!)
        {
            copy.Append(message[from..start]);
            from = end;
        }

        copy.Append(message[from..]);
        writer.WriteRawValue(copy.Span, skipInputValidation: true);
    }

    /// <summary>Collects the cuts inside an object (the reader on its start; on its end after).</summary>
    private static void ScanObject(ref Utf8JsonReader reader, ref Cuts cuts)
    {
        // Where the last kept property's value ends: a dropped property after it is cut together with its leading comma.
        // Dropped properties before any kept one are cut up to the next property's name (taking the comma after them).
        var keptEnd = -1;
        int leadingStart = -1, leadingEnd = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var nameStart = (int)reader.TokenStartIndex;
            var drop = reader.ValueTextEquals("cache_control"u8);
            var opaque = !drop && reader.ValueTextEquals("input"u8);
            reader.Read();
            if (drop)
            {
                reader.Skip();
                var end = (int)reader.BytesConsumed;
                if (keptEnd >= 0)
                {
                    cuts.Add(keptEnd, end);
                }
                else
                {
                    leadingStart = leadingStart < 0 ? nameStart : leadingStart;
                    leadingEnd = end;
                }

                continue;
            }

            if (leadingStart >= 0)
            {
                cuts.Add(leadingStart, nameStart);
                leadingStart = -1;
            }

            if (!opaque && reader.TokenType == JsonTokenType.StartObject)
            {
                ScanObject(ref reader, ref cuts);
            }
            else if (!opaque && reader.TokenType == JsonTokenType.StartArray)
            {
                ScanArray(ref reader, ref cuts);
            }
            else
            {
                reader.Skip();
            }

            keptEnd = (int)reader.BytesConsumed;
        }

        if (leadingStart >= 0)
        {
            cuts.Add(leadingStart, leadingEnd);
        }
    }

    private static void ScanArray(ref Utf8JsonReader reader, ref Cuts cuts)
    {
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType == JsonTokenType.StartObject)
            {
                ScanObject(ref reader, ref cuts);
            }
            else if (reader.TokenType == JsonTokenType.StartArray)
            {
                ScanArray(ref reader, ref cuts);
            }
        }
    }

    /// <summary>Byte ranges to leave out, in order; the list exists only once there is a cut.</summary>
    private struct Cuts
    {
        public List<(int Start, int End)>? List;

        public readonly int Count => List?.Count ?? 0;

        public void Add(int start, int end)
        {
            List ??= new List<(int, int)>(2);

            // A second dropped property after the same kept one widens the first cut.
            if (List.Count > 0 && List[^1].Start == start)
            {
                List[^1] = (start, end);
            }
            else
            {
                List.Add((start, end));
            }
        }
    }
}
