using System.Text.Json;

namespace Mnemo.Proxy.Dialects;

/// <summary>Finds a top-level array of role-tagged messages with <see cref="Utf8JsonReader"/>: the splice point and the new inputs.</summary>
/// <remarks>Shared by the dialects whose history is one array of <c>{"role":…}</c> objects (OpenAI Chat, Anthropic Messages, Ollama).</remarks>
internal static class JsonMessages
{
    private enum Role
    {
        Missing,
        System,
        Assistant,
        Other,
    }

    /// <summary>What else of the request's top level a dialect needs besides the messages array.</summary>
    public delegate ParseResult? PropertyReader(ref Utf8JsonReader reader, SplicePlan plan);

    /// <summary>
    /// History goes after the leading system (or developer) messages, or first when there are none.
    /// The inputs of the turn are the non-system messages, or with <paramref name="fullHistory"/>, those after the last
    /// assistant message (the client resends the rest). <paramref name="property"/> sees every other top-level property
    /// (the reader on its name) and may end the parse with a result.
    /// </summary>
    public static ParseResult Parse(
        ReadOnlySpan<byte> body, ReadOnlySpan<byte> arrayName, string displayName, bool fullHistory, SplicePlan plan, PropertyReader? property = null)
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
            ParseResult? early = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals(arrayName))
                {
                    if (found)
                    {
                        return ParseResult.Invalid($"The request body has more than one {displayName} property.");
                    }

                    found = true;
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return ParseResult.Invalid($"{displayName} must be an array.");
                    }

                    var error = ParseArray(ref reader, displayName, fullHistory, plan);
                    if (error is not null)
                    {
                        return ParseResult.Invalid(error);
                    }
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    reader.Read();
                    plan.Stream = reader.TokenType == JsonTokenType.True;
                    reader.Skip();
                }
                else if (property is not null)
                {
                    early ??= property(ref reader, plan);
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

            return early ?? (found ? ParseResult.Splice : ParseResult.Invalid($"The request body has no {displayName} array."));
        }
        catch (JsonException)
        {
            return ParseResult.Invalid("The request body is not valid JSON.");
        }
    }

    private static string? ParseArray(ref Utf8JsonReader reader, string displayName, bool fullHistory, SplicePlan plan)
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
                case Role.Assistant when fullHistory:
                    leading = false;
                    plan.ClearInputs();
                    continue;
            }

            leading = false;
            plan.AddInput(new Range(start, end), end - start);
        }

        if (leadingSystemEnd >= 0)
        {
            plan.InsertAt(leadingSystemEnd, commaBefore: true, commaAfter: false);
        }
        else
        {
            plan.InsertAt(arrayStart + 1, commaBefore: false, commaAfter: count > 0);
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
