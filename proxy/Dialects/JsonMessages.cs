using System.Text.Json;

namespace Mnemo.Proxy.Dialects;

/// <summary>Finds a top-level array of role-tagged messages with <see cref="Utf8JsonReader"/>: the splice point and the new inputs.</summary>
/// <remarks>Shared by the dialects whose history is one array of <c>{"role":…}</c> objects (OpenAI Chat, Anthropic Messages, Ollama).</remarks>
internal static class JsonMessages
{
    /// <summary>Anything else would leave the answer's format (a stream or one document) to the upstream's reading of it.</summary>
    public const string StreamNotBoolean = "The 'stream' property must be true or false.";

    /// <summary>What an item of a history array is, for the splice point and the inputs.</summary>
    public enum ItemKind
    {
        /// <summary>A message without a usable role: the request is rejected.</summary>
        Missing,

        /// <summary>A system or developer message: history goes after the leading ones.</summary>
        System,

        /// <summary>What the model produced (an assistant message, a call): a full-history client resent it.</summary>
        Output,

        /// <summary>
        /// A reference to an item the provider holds (Responses' <c>item_reference</c>): resent history, as an output is,
        /// and never part of a stored turn (see <see cref="Dialect.ProviderReference"/>).
        /// </summary>
        Reference,

        /// <summary>Anything else: the new input of this turn.</summary>
        Input,
    }

    /// <summary>Reads one item (the reader on its start object, left on its end) and says what it is.</summary>
    public delegate ItemKind ItemClassifier(ref Utf8JsonReader reader);

    /// <summary>What else of the request's top level a dialect needs besides the messages array.</summary>
    public delegate ParseResult? PropertyReader(ref Utf8JsonReader reader, SplicePlan plan);

    /// <summary>
    /// Records where the top-level <c>model</c> string is (the reader on its name, left on its value): the stored turn
    /// keeps it, and its token count uses that model's encoding. Any other value is the upstream's to judge.
    /// </summary>
    public static void ReadModel(ref Utf8JsonReader reader, SplicePlan plan)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.String)
        {
            var start = (int)reader.TokenStartIndex;
            plan.Model = new Range(start, (int)reader.BytesConsumed);
        }

        reader.Skip();
    }

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
            var streamFound = false;
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

                    var error = ParseItems(ref reader, displayName, fullHistory, plan, ReadRole);
                    if (error is not null)
                    {
                        return ParseResult.Invalid(error);
                    }
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    // Two values are ambiguous: the upstream may read the other one and answer in a format we would not record.
                    if (streamFound)
                    {
                        return ParseResult.Invalid("The request body has more than one 'stream' property.");
                    }

                    streamFound = true;
                    reader.Read();
                    if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False or JsonTokenType.Null))
                    {
                        return ParseResult.Invalid(JsonMessages.StreamNotBoolean);
                    }

                    plan.Stream = reader.TokenType == JsonTokenType.True;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("model"u8))
                {
                    ReadModel(ref reader, plan);
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
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: a name or role compared here holds an escape that is not valid UTF-16 (a lone surrogate).
            return ParseResult.Invalid("The request body is not valid JSON.");
        }
    }

    /// <summary>
    /// Reads the items of a history array (the reader on its start, left on its end), sets the splice point after the
    /// leading system items (or first) and the inputs: the non-system items, or with <paramref name="fullHistory"/>
    /// those after the last output. Returns the first problem found, reading on to the end of the array either way.
    /// </summary>
    public static string? ParseItems(ref Utf8JsonReader reader, string displayName, bool fullHistory, SplicePlan plan, ItemClassifier classify)
    {
        var arrayStart = (int)reader.TokenStartIndex;
        var leadingSystemEnd = -1;
        var leading = true;
        var count = 0;
        string? error = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                error ??= $"Each entry of {displayName} must be an object.";
                reader.Skip();
                continue;
            }

            var start = (int)reader.TokenStartIndex;
            var kind = classify(ref reader);
            var end = (int)reader.TokenStartIndex + 1;
            count++;
            switch (kind)
            {
                case ItemKind.Missing:
                    error ??= $"Each entry of {displayName} needs a string 'role'.";
                    continue;
                case ItemKind.System:
                    if (leading)
                    {
                        leadingSystemEnd = end;
                    }

                    continue;
                case ItemKind.Output or ItemKind.Reference when fullHistory:
                    leading = false;
                    plan.ClearInputs();
                    continue;
            }

            leading = false;
            plan.AddInput(new Range(start, end), end - start);
            if (kind is ItemKind.Output or ItemKind.Reference)
            {
                plan.OutputEnd = plan.Inputs.Count;
            }

            if (kind == ItemKind.Reference)
            {
                plan.References++;
            }
        }

        if (leadingSystemEnd >= 0)
        {
            plan.InsertAt(leadingSystemEnd, commaBefore: true, commaAfter: false);
        }
        else
        {
            plan.InsertAt(arrayStart + 1, commaBefore: false, commaAfter: count > 0);
        }

        return error;
    }

    private static ItemKind ReadRole(ref Utf8JsonReader reader)
    {
        var role = ItemKind.Missing;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isRole = reader.ValueTextEquals("role"u8);
            reader.Read();
            if (isRole && reader.TokenType == JsonTokenType.String)
            {
                role = reader.ValueTextEquals("system"u8) || reader.ValueTextEquals("developer"u8) ? ItemKind.System
                    : reader.ValueTextEquals("assistant"u8) ? ItemKind.Output
                    : ItemKind.Input;
            }
            else
            {
                reader.Skip();
            }
        }

        return role;
    }
}
