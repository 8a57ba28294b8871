using System.Buffers;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.ML.Tokenizers;

namespace Mnemo.Proxy.Tokens;

/// <summary>Counts the tokens of a stored turn's messages with the encoding of the model that produced it.</summary>
/// <remarks>
/// Only the writer calls it, once per turn, before the turn's first write (off the response path); a read uses the count
/// stored with the turn. The vocabularies come from the embedded data packages, loaded on first use (no download).
/// </remarks>
internal sealed class TokenCounter
{
    public const string O200kBase = "o200k_base";
    public const string Cl100kBase = "cl100k_base";

    // Test seam: every tokenization in the process, so a test can show that reads never tokenize.
    private static long s_calls;

    // Per process, not per instance: a vocabulary takes 20 (cl100k) to 40 MB (o200k) of heap and most of a second of CPU
    // to build, and its allocations pause the collector meanwhile.
    private static readonly Lazy<Tokenizer> s_o200k = new(static () => TiktokenTokenizer.CreateForEncoding(O200kBase));
    private static readonly Lazy<Tokenizer> s_cl100k = new(static () => TiktokenTokenizer.CreateForEncoding(Cl100kBase));
    private readonly string? _forced;
    private readonly string _fallback;

    public TokenCounter(IOptions<TokenOptions> options, IOptions<Context.MemoryOptions> memory)
    {
        Enabled = options.Value.Enabled ?? memory.Value.MaxContextTokens > 0;
        _forced = string.IsNullOrEmpty(options.Value.Encoding) ? null : options.Value.Encoding;
        _fallback = options.Value.Fallback;
    }

    /// <summary>Turns are counted (<see cref="TokenOptions.Enabled"/>); otherwise they keep their estimate and nothing is loaded.</summary>
    public bool Enabled { get; }

    /// <summary>How many times any counter of this process has tokenized text.</summary>
    public static long Calls => Interlocked.Read(ref s_calls);

    public static bool IsKnownEncoding(string? name) => name is O200kBase or Cl100kBase;

    /// <summary>The encoding used for <paramref name="model"/>.</summary>
    public string EncodingFor(string? model) => _forced ?? OpenAIEncoding(model) ?? _fallback;

    /// <summary>The tokens of UTF-8 <paramref name="utf8"/> text in <paramref name="model"/>'s encoding.</summary>
    public int Count(ReadOnlySpan<byte> utf8, string? model)
    {
        Interlocked.Increment(ref s_calls);
        var tokenizer = Tokenizer(EncodingFor(model));
        var chars = ArrayPool<char>.Shared.Rent(Encoding.UTF8.GetMaxCharCount(utf8.Length));
        try
        {
            var length = Encoding.UTF8.GetChars(utf8, chars);
            return tokenizer.CountTokens(chars.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
        }
    }

    /// <summary>
    /// Builds the encoding most turns use (the forced one, else the fallback) before traffic arrives: built on the first
    /// write instead, its pauses would hold up the reads of that moment. The other is built on its first turn, by the writer.
    /// </summary>
    public void Warm()
    {
        if (Enabled)
        {
            _ = Tokenizer(_forced ?? _fallback);
        }
    }

    private static Tokenizer Tokenizer(string encoding) => encoding == Cl100kBase ? s_cl100k.Value : s_o200k.Value;

    /// <summary>The encoding of an OpenAI model by its name's family, or null for any other model.</summary>
    internal static string? OpenAIEncoding(string? model)
    {
        if (string.IsNullOrEmpty(model))
        {
            return null;
        }

        // "openai/gpt-4o" (routers) and "ft:gpt-4o-mini:org::id" (fine-tunes) name the same family.
        var name = model.AsSpan(model.LastIndexOf('/') + 1);
        if (name.StartsWith("ft:", StringComparison.OrdinalIgnoreCase))
        {
            name = name[3..];
        }

        if (name.StartsWith("gpt-4o", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("chatgpt-4o", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("gpt-4.1", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("gpt-4.5", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("gpt-5", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("gpt-oss", StringComparison.OrdinalIgnoreCase)
            || IsReasoningModel(name))
        {
            return O200kBase;
        }

        if (name.StartsWith("gpt-4", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("gpt-3.5", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("gpt-35", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("text-embedding-3", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("text-embedding-ada-002", StringComparison.OrdinalIgnoreCase))
        {
            return Cl100kBase;
        }

        return null;
    }

    // o1, o3, o4 and their variants ("o1-mini", "o3-pro", "o4-mini-2025-04-16"), not "ollama" or "o10x".
    private static bool IsReasoningModel(ReadOnlySpan<char> name) =>
        name.Length >= 2 && (name[0] is 'o' or 'O') && (name[1] is '1' or '3' or '4') && (name.Length == 2 || name[2] == '-');
}
