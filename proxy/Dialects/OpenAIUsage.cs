using System.Text.Json;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Dialects;

/// <summary>OpenAI's usage object, in both its Chat Completions (<c>prompt_tokens</c>…) and Responses (<c>input_tokens</c>…) spellings.</summary>
internal static class OpenAIUsage
{
    /// <summary>Reads the usage object the reader is on (its start); a null or other value reads as unknown.</summary>
    public static TokenUsage Read(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return TokenUsage.Unknown;
        }

        long input = -1, output = -1, cached = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("prompt_tokens"u8) || reader.ValueTextEquals("input_tokens"u8))
            {
                reader.Read();
                input = ResponseParser.Count(ref reader);
            }
            else if (reader.ValueTextEquals("completion_tokens"u8) || reader.ValueTextEquals("output_tokens"u8))
            {
                reader.Read();
                output = ResponseParser.Count(ref reader);
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8) || reader.ValueTextEquals("input_tokens_details"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isCached = reader.ValueTextEquals("cached_tokens"u8);
                    reader.Read();
                    if (isCached)
                    {
                        cached = ResponseParser.Count(ref reader);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return new TokenUsage(input, output, cached, -1);
    }
}
