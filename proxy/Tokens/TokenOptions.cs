namespace Mnemo.Proxy.Tokens;

/// <summary>How stored turns are counted in tokens (<c>Mnemo:Tokens</c>).</summary>
/// <remarks>
/// The encoding follows the request's <c>model</c>: <c>o200k_base</c> for gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3, o4 and
/// gpt-oss; <c>cl100k_base</c> for gpt-4 and gpt-3.5; <see cref="Fallback"/> for every other model (Claude, Llama, Mistral…),
/// whose own tokenizers are not published as data Mnemo can embed: their counts are an approximation, good to within
/// about a tenth for English text.
/// </remarks>
public sealed record TokenOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Tokens";

    /// <summary>
    /// Whether the writer counts turns: by default (null) only with a token budget (<c>Mnemo:Memory:MaxContextTokens</c>
    /// above 0), since the vocabulary holds 40 MB (o200k) of memory; without a count a turn keeps its bytes-based estimate.
    /// </summary>
    public bool? Enabled { get; init; }

    /// <summary>When set, every turn is counted with this encoding, whatever its model (<c>o200k_base</c> or <c>cl100k_base</c>).</summary>
    public string? Encoding { get; init; }

    /// <summary>The encoding for a model that is not an OpenAI model (or has no <c>model</c>).</summary>
    public string Fallback { get; init; } = TokenCounter.O200kBase;
}
