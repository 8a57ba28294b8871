namespace Mnemo.Proxy.Metrics;

/// <summary>The API formats Mnemo understands: the <c>dialect</c> metric label, and the label a stored turn carries.</summary>
internal enum DialectId
{
    OpenAIChat,
    AnthropicMessages,
    OpenAIResponses,
    OllamaChat,

    /// <summary>A request no dialect claims: forwarded untouched.</summary>
    Other,
}

internal static class DialectLabels
{
    public const int Count = 5;

    private static readonly string[] s_labels = ["openai-chat", "anthropic-messages", "openai-responses", "ollama-chat", "other"];
    private static readonly byte[][] s_utf8 = Array.ConvertAll(s_labels, System.Text.Encoding.UTF8.GetBytes);

    public static string Label(this DialectId id) => s_labels[(int)id];

    /// <summary>The label as UTF-8, for writing a stored turn.</summary>
    public static ReadOnlySpan<byte> Utf8Label(this DialectId id) => s_utf8[(int)id];

    /// <summary>Parses the label of a dialect that has memory (never <see cref="DialectId.Other"/>).</summary>
    public static bool TryParse(string? label, out DialectId id)
    {
        for (var i = 0; i < s_labels.Length - 1; i++)
        {
            if (string.Equals(s_labels[i], label, StringComparison.OrdinalIgnoreCase))
            {
                id = (DialectId)i;
                return true;
            }
        }

        id = DialectId.Other;
        return false;
    }

    /// <summary>Parses a label as stored (exact, lowercase UTF-8).</summary>
    public static bool TryParse(ReadOnlySpan<byte> label, out DialectId id)
    {
        for (var i = 0; i < s_utf8.Length - 1; i++)
        {
            if (label.SequenceEqual(s_utf8[i]))
            {
                id = (DialectId)i;
                return true;
            }
        }

        id = DialectId.Other;
        return false;
    }
}
