using System.Text.Json;
using Mnemo.Proxy.Context;

namespace Mnemo.Proxy.Dialects;

/// <summary>Finds a top-level array of role-tagged messages with <see cref="Utf8JsonReader"/>: the splice point and the new inputs.</summary>
internal static class JsonMessages
{
    private enum Role
    {
        Missing,
        System,
        Assistant,
        Other,
    }

    /// <summary>
    /// History goes after the leading system (or developer) messages. The inputs of the turn are the non-system messages,
    /// or in <see cref="MemoryMode.Record"/>, those after the last assistant message (the client resends the rest).
    /// </summary>
    public static string? Parse(ReadOnlySpan<byte> body, ReadOnlySpan<byte> arrayName, string displayName, MemoryMode mode, ChatRequest request)
    {
        request.Reset();
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 128 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return "The request body must be a JSON object.";
            }

            var found = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals(arrayName))
                {
                    if (found)
                    {
                        return $"The request body has more than one {displayName} property.";
                    }

                    found = true;
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return $"{displayName} must be an array.";
                    }

                    var error = ParseArray(ref reader, displayName, mode, request);
                    if (error is not null)
                    {
                        return error;
                    }
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    reader.Read();
                    request.Stream = reader.TokenType == JsonTokenType.True;
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

            return found ? null : $"The request body has no {displayName} array.";
        }
        catch (JsonException)
        {
            return "The request body is not valid JSON.";
        }
    }

    private static string? ParseArray(ref Utf8JsonReader reader, string displayName, MemoryMode mode, ChatRequest request)
    {
        var arrayStart = (int)reader.TokenStartIndex;
        var leadingSystemEnd = -1;
        var leading = true;
        var count = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return $"Each entry of {displayName} must be an object.";
            }

            var start = (int)reader.TokenStartIndex;
            var role = ReadRole(ref reader);
            var end = (int)reader.TokenStartIndex + 1;
            count++;
            switch (role)
            {
                case Role.Missing:
                    return $"Each entry of {displayName} needs a string 'role'.";
                case Role.System:
                    if (leading)
                    {
                        leadingSystemEnd = end;
                    }

                    continue;
                case Role.Assistant when mode == MemoryMode.Record:
                    leading = false;
                    request.Inputs.Clear();
                    request.InputBytes = 0;
                    continue;
            }

            leading = false;
            request.Inputs.Add(new Range(start, end));
            request.InputBytes += end - start;
        }

        if (leadingSystemEnd >= 0)
        {
            request.InsertAt = leadingSystemEnd;
            request.CommaBefore = true;
        }
        else
        {
            request.InsertAt = arrayStart + 1;
            request.CommaAfter = count > 0;
        }

        return null;
    }

    private static Role ReadRole(ref Utf8JsonReader reader)
    {
        var role = Role.Missing;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isRole = reader.ValueTextEquals("role"u8);
            reader.Read();
            if (isRole && reader.TokenType == JsonTokenType.String)
            {
                role = reader.ValueTextEquals("system"u8) || reader.ValueTextEquals("developer"u8) ? Role.System
                    : reader.ValueTextEquals("assistant"u8) ? Role.Assistant
                    : Role.Other;
            }
            else
            {
                reader.Skip();
            }
        }

        return role;
    }
}
