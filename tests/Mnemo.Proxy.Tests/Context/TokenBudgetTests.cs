using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.ML.Tokenizers;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Tests.Common;
using Mnemo.Proxy.Tokens;

namespace Mnemo.Proxy.Tests.Context;

/// <summary>
/// Token counts and the token budget end to end: real proxy, real redis-server, fake upstream. The counts are checked
/// against tiktoken's published test data, the budget against the bytes the upstream received.
/// </summary>
public sealed class TokenBudgetTests : FunctionalTest
{
    private const int Budget = 2000;
    private const int Turns = 200;
    private const string Prefix = "{\"model\":\"gpt-4o\",\"messages\":[";

    private static readonly string[] s_words =
        ["memory", "proxy", "session", "window", "budget", "cache", "prefix", "token", "turn", "history", "summary", "redis"];

    private static readonly TiktokenTokenizer s_o200k = TiktokenTokenizer.CreateForEncoding("o200k_base");
    private static readonly TiktokenTokenizer s_cl100k = TiktokenTokenizer.CreateForEncoding("cl100k_base");

    // openai/tiktoken tests/test_encoding.py (test_simple, test_simple_regex) for cl100k_base; o200k_base ids as tiktoken 0.7+ gives them.
    [TestCase("cl100k_base", "hello world", new[] { 15339, 1917 })]
    [TestCase("cl100k_base", "rer", new[] { 38149 })]
    [TestCase("cl100k_base", "'rer", new[] { 2351, 81 })]
    [TestCase("o200k_base", "hello world", new[] { 24912, 2375 })]
    public void Tokenizer_PublishedReferenceStrings_GiveTheReferenceIds(string encoding, string text, int[] ids)
    {
        var tokenizer = encoding == "o200k_base" ? s_o200k : s_cl100k;
        Assert.That(tokenizer.EncodeToIds(text), Is.EqualTo(ids));

        var counter = Counter(new TokenOptions { Encoding = encoding });
        Assert.That(counter.Count(Encoding.UTF8.GetBytes(text), model: null), Is.EqualTo(ids.Length), "the project's counter counts the same");
    }

    [TestCase("gpt-4o-mini", "o200k_base")]
    [TestCase("gpt-4.1", "o200k_base")]
    [TestCase("gpt-5", "o200k_base")]
    [TestCase("o3-mini", "o200k_base")]
    [TestCase("openai/o4-mini", "o200k_base")]
    [TestCase("ft:gpt-4o-mini:org::abc", "o200k_base")]
    [TestCase("gpt-4", "cl100k_base")]
    [TestCase("gpt-4-turbo", "cl100k_base")]
    [TestCase("gpt-3.5-turbo", "cl100k_base")]
    [TestCase("claude-sonnet-4-5", "cl100k_base")]
    [TestCase("llama3.2", "cl100k_base")]
    [TestCase(null, "cl100k_base")]
    public void EncodingFor_ModelName_OpenAIFamiliesByNameOthersTheFallback(string? model, string expected)
    {
        Assert.That(Counter(new TokenOptions { Fallback = "cl100k_base" }).EncodingFor(model), Is.EqualTo(expected));
        Assert.That(Counter(new TokenOptions { Encoding = "o200k_base", Fallback = "cl100k_base" }).EncodingFor(model), Is.EqualTo("o200k_base"), "Encoding forces one");
    }

    [Test]
    public async Task LongConversation_WithBudgetAndDefaultBlockEviction_StaysInBudget_CountsOnWriteOnly_KeepsPrefixes()
    {
        var result = await ConverseAsync("budget-blocks", fraction: null);

        Assert.That(result.MaxInjected, Is.LessThanOrEqualTo(Budget), "no request's injected history exceeds the budget (o200k tokens of the bytes sent)");
        Assert.That(result.MaxInjected, Is.GreaterThan(Budget / 2), "the budget, not the turn limit, bounds the window");
        Assert.That(result.TokenizerCalls, Is.EqualTo(Turns), $"each turn tokenized once, when written; {Turns} reads tokenized nothing");
        Assert.That(result.PrefixRatio, Is.GreaterThanOrEqualTo(0.9), $"requests whose injected history starts with the previous one's: {result.PrefixRatio:P1}");
        TestContext.Out.WriteLine($"block eviction (0.5): prefix kept on {result.PrefixRatio:P1} of requests, largest injected part {result.MaxInjected} tokens");

        var stored = await StoredTurnsAsync("budget-blocks");
        long position = -1;
        foreach (var turn in stored)
        {
            var messages = turn.GetProperty("messages").GetRawText();
            Assert.That(turn.GetProperty("tok").GetInt32(), Is.EqualTo(s_o200k.CountTokens(messages[1..^1]) + 1), "the stored count is the o200k count of the messages");
            Assert.That(turn.GetProperty("m").GetString(), Is.EqualTo("gpt-4o"));
            Assert.That(turn.GetProperty("usage").GetProperty("output").GetInt64(), Is.EqualTo(10), "the upstream's usage kept beside the count");
            if (position >= 0)
            {
                Assert.That(turn.GetProperty("p").GetInt64(), Is.EqualTo(position), "positions run on: each turn starts where the one before ended");
            }

            position = turn.GetProperty("p").GetInt64() + turn.GetProperty("tok").GetInt64();
        }
    }

    [Test]
    public async Task LongConversation_WithOneTurnEviction_KeepsFarFewerPrefixes()
    {
        var blocks = await ConverseAsync("budget-blocks", fraction: null);
        await Redis.Db.ExecuteAsync("FLUSHALL");
        var sliding = await ConverseAsync("budget-sliding", fraction: 1.0);

        Assert.That(sliding.MaxInjected, Is.LessThanOrEqualTo(Budget));
        Assert.That(sliding.PrefixRatio, Is.LessThan(blocks.PrefixRatio - 0.5), $"one-turn eviction {sliding.PrefixRatio:P1}, blocks {blocks.PrefixRatio:P1}");
        TestContext.Out.WriteLine($"one-turn eviction (1.0): prefix kept on {sliding.PrefixRatio:P1} of requests; block eviction (0.5): {blocks.PrefixRatio:P1}");
    }

    private async Task<Conversation> ConverseAsync(string session, double? fraction)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Mnemo:Memory:MaxContextTokens"] = Budget.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Mnemo:Memory:MaxContextTurns"] = "100",
        };
        if (fraction is { } f)
        {
            settings["Mnemo:Memory:EvictionFraction"] = f.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        await using var proxy = await StartProxyAsync(settings);
        var calls = TokenCounter.Calls;
        var previous = "";
        int kept = 0, compared = 0, maxInjected = 0;
        var random = new Random(11);
        for (var n = 0; n < Turns; n++)
        {
            var words = string.Join(' ', Enumerable.Range(0, 4 + random.Next(20)).Select(_ => s_words[random.Next(s_words.Length)]));
            var question = $"Question {n}: {words}?";
            var body = Prefix + "{\"role\":\"user\",\"content\":" + JsonSerializer.Serialize(question) + "}]}";
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body, session));
            Assert.That((int)response.StatusCode, Is.EqualTo(200));

            var sent = Upstream.LastRequest.BodyText;
            Assert.That(sent, Does.StartWith(Prefix));
            var newMessage = sent.IndexOf("{\"role\":\"user\",\"content\":\"Question " + n + ":", StringComparison.Ordinal);
            var injected = newMessage == Prefix.Length ? "" : sent[Prefix.Length..(newMessage - 1)];
            maxInjected = Math.Max(maxInjected, s_o200k.CountTokens(injected));
            if (n > 1)
            {
                compared++;
                kept += injected.StartsWith(previous, StringComparison.Ordinal) ? 1 : 0;
            }

            previous = injected;

            // A user reads the answer before the next question: the turn is counted and written by then.
            await Eventually.TrueAsync(
                async () => ((string?)await Redis.Db.ListGetByIndexAsync(TurnsKey(session), -1))?.Contains(question, StringComparison.Ordinal) == true,
                "the turn written");
        }

        return new Conversation(maxInjected, (double)kept / compared, TokenCounter.Calls - calls);
    }

    private static TokenCounter Counter(TokenOptions options) => new(Options.Create(options), Options.Create(new MemoryOptions { MaxContextTokens = 1 }));

    private sealed record Conversation(int MaxInjected, double PrefixRatio, long TokenizerCalls);
}
