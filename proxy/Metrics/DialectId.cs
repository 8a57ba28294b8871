namespace Mnemo.Proxy.Dialects;

/// <summary>The API formats Mnemo understands; also the <c>dialect</c> metric label.</summary>
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

    public static string Label(this DialectId id) => s_labels[(int)id];

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
}
