using System.Net;
using System.Text.Json;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Tests.Common;
using static Mnemo.Proxy.Tests.Admin.AdminApiClient;

namespace Mnemo.Proxy.Tests.Admin;

/// <summary>
/// The export (<c>GET /admin/v1/tenants/{tenant}/sessions/{session}</c>) against what the store holds and what the
/// upstream reported: turns, bytes, labels, times, usage, totals and cost, on Redis and on the embedded store.
/// </summary>
public sealed class AdminApiExportTests : FunctionalTest
{
    /// <summary>What each dialect's default fixture answers (JSON or stream) and the usage it reports, normalised (null: not reported).</summary>
    private static readonly Dictionary<(string Dialect, bool Stream), (string Answer, long?[] Usage)> s_fixtures = new()
    {
        [("openai-chat", false)] = ("Hello! How can I assist you today?", [19, 10, 0, null]),
        // stream-usage.sse (set below): the stream with its usage chunk.
        [("openai-chat", true)] = ("Hello! How can I assist you today?", [19, 10, null, null]),
        [("anthropic-messages", false)] = ("Hi! My name is Claude.", [2095, 503, null, null]),
        [("anthropic-messages", true)] = ("Hello!", [25, 15, null, null]),
        [("openai-responses", false)] = ("In a peaceful grove beneath a silver moon, a unicorn named Lumina", [36, 87, 0, null]),
        [("openai-responses", true)] = ("Hello! How can I assist you today?", [11, 10, 0, null]),
        [("ollama-chat", false)] = ("Hello! How can I help you today?", [11, 18, null, null]),
        [("ollama-chat", true)] = ("The sky is blue due to Rayleigh scattering.", [26, 282, null, null]),
    };

    private static readonly string[] s_usageNames = ["input", "output", "cache_read", "cache_write"];
    private static readonly string[] s_totalNames = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"];

    [TestCase(true, TestName = "Export_SessionAcrossAllDialectsStreamingAndNot_IsTheStoredTurnsExactly(Redis)")]
    [TestCase(false, TestName = "Export_SessionAcrossAllDialectsStreamingAndNot_IsTheStoredTurnsExactly(Embedded)")]
    public async Task Export_SessionAcrossAllDialectsStreamingAndNot_IsTheStoredTurnsExactly(bool redis)
    {
        Upstream.Answer("OpenAIChat", stream: "stream-usage.sse");
        await using var proxy = await StartProxyAsync(Settings(), redis: redis ? "" : null);
        const string session = "export-all-dialects";
        var started = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var sent = new List<(string Dialect, string Model, bool Stream, string Text)>();
        foreach (var (dialect, _, model) in AllDialects)
        {
            foreach (var stream in new[] { false, true })
            {
                var text = $"Question {sent.Count + 1} in {dialect}, {(stream ? "streamed" : "whole")}";
                await SendTurnAsync(proxy, Turn(dialect, text, stream, session));
                sent.Add((dialect, model, stream, text));
                await WaitForStoredAsync(proxy, session, sent.Count, redis);
            }
        }

        var stored = await StoredElementsAsync(proxy, session, redis);
        var reply = await GetAsync(proxy, SessionPath(Tenant(ApiKey), session));

        Assert.That(reply.Status, Is.EqualTo(HttpStatusCode.OK), reply.Text);
        Assert.That(reply.Response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
        var export = reply.Json;
        Assert.That(export.GetProperty("tenant").GetString(), Is.EqualTo(Tenant(ApiKey)));
        Assert.That(export.GetProperty("session").GetString(), Is.EqualTo(session));
        Assert.That(export.GetProperty("summary").ValueKind, Is.EqualTo(JsonValueKind.Null));
        var turns = export.GetProperty("turns").EnumerateArray().ToArray();
        Assert.That(stored, Has.Length.EqualTo(sent.Count), "every turn was stored");
        Assert.That(turns.Select(t => t.GetProperty("id").GetString()), Is.EqualTo(stored.Select(s => s.GetProperty("id").GetString())),
            "the export holds the stored turns, same ids, same order");
        var expected = new long[4];
        var perModel = new Dictionary<string, long[]>();
        for (var i = 0; i < turns.Length; i++)
        {
            var (dialect, model, stream, text) = sent[i];
            var (answer, usage) = s_fixtures[(dialect, stream)];
            var turn = turns[i];
            var element = stored[i];
            var what = $"turn {i + 1} ({dialect}, {(stream ? "stream" : "JSON")})";
            Assert.That(turn.GetProperty("messages").GetRawText(), Is.EqualTo(element.GetProperty("messages").GetRawText()),
                $"{what}: the stored messages byte for byte");
            var messages = Strings(turn.GetProperty("messages"));
            Assert.That(messages, Does.Contain(text), $"{what}: the user text sent");
            Assert.That(messages, Does.Contain(answer), $"{what}: the fixture's answer");
            Assert.That(messages.IndexOf(text, StringComparison.Ordinal), Is.LessThan(messages.IndexOf(answer, StringComparison.Ordinal)), $"{what}: question before answer");
            Assert.That(turn.GetProperty("dialect").GetString(), Is.EqualTo(dialect), what);
            Assert.That(element.GetProperty("d").GetString(), Is.EqualTo(dialect), what);
            Assert.That(turn.GetProperty("model").GetString(), Is.EqualTo(model), $"{what}: the request's model");
            var ts = element.GetProperty("ts").GetInt64();
            Assert.That(ts, Is.InRange(started, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), $"{what}: answered during the test");
            Assert.That(turn.GetProperty("time").GetString(), Is.EqualTo(IsoTime(ts)), what);
            Assert.That(turn.GetProperty("tokens").GetInt64(), Is.EqualTo(element.GetProperty("tok").GetInt64()), what);
            var exported = turn.GetProperty("usage");
            for (var k = 0; k < 4; k++)
            {
                var value = exported.GetProperty(s_usageNames[k]);
                Assert.That(value.ValueKind == JsonValueKind.Null ? (long?)null : value.GetInt64(), Is.EqualTo(usage[k]), $"{what}: usage.{s_usageNames[k]}");
                expected[k] += usage[k] ?? 0;
                (perModel.TryGetValue(model, out var sums) ? sums : perModel[model] = new long[4])[k] += usage[k] ?? 0;
            }
        }

        var totals = export.GetProperty("totals");
        Assert.That(totals.GetProperty("turns_stored").GetInt64(), Is.EqualTo(8));
        Assert.That(totals.GetProperty("turns_written").GetInt64(), Is.EqualTo(8));
        Assert.That(totals.GetProperty("last_activity").GetString(), Is.EqualTo(IsoTime(stored[^1].GetProperty("ts").GetInt64())));
        Assert.That(Tokens(totals), Is.EqualTo(expected), "totals: the sums of the upstream's usage");
        var byModel = totals.GetProperty("by_model");
        Assert.That(byModel.EnumerateObject().Select(p => p.Name), Is.EquivalentTo(perModel.Keys));
        foreach (var (model, sums) in perModel)
        {
            Assert.That(Tokens(byModel.GetProperty(model)), Is.EqualTo(sums), model);
        }

        Assert.That(totals.TryGetProperty("cost", out _), Is.False, "no cost without prices");
        if (redis)
        {
            Assert.That(export.GetProperty("expires_in_seconds").GetInt64(), Is.InRange(1, (long)TimeSpan.FromDays(30).TotalSeconds));
        }
    }

    /// <summary>Answers of chosen usage: OpenAI chat (model gpt-4o) and Anthropic (cache reads and writes).</summary>
    private static readonly (string Dialect, string Model, long Input, long Output, long CacheRead, long CacheWrite)[] s_usages =
    [
        ("openai-chat", "gpt-4o", 1000, 200, 0, 0),
        ("openai-chat", "gpt-4o", 1500, 300, 1024, 0),
        // Anthropic: input_tokens 50 + 2000 read + 300 written is a prompt of 2350.
        ("anthropic-messages", "claude-sonnet-4-5", 50, 120, 2000, 300),
        ("openai-chat", "gpt-4o", 2100, 77, 1536, 0),
        ("anthropic-messages", "claude-sonnet-4-5", 40, 90, 2300, 0),
    ];

    [TestCase(true, TestName = "Totals_FiveTurnsTwoKeptTwoModels_SumEveryReportedUsage_CostByHand(Redis)")]
    [TestCase(false, TestName = "Totals_FiveTurnsTwoKeptTwoModels_SumEveryReportedUsage_CostByHand(Embedded)")]
    public async Task Totals_FiveTurnsTwoKeptTwoModels_SumEveryReportedUsage_CostByHand(bool redis)
    {
        AnswerWithChosenUsage();
        await using var proxy = await StartProxyAsync(Settings(
            ("Mnemo:Memory:MaxStoredTurns", "2"),
            ("Mnemo:Pricing:Currency", "EUR"),
            ("Mnemo:Pricing:Models:0:Model", "gpt-4o"),
            ("Mnemo:Pricing:Models:0:Input", "2.5"),
            ("Mnemo:Pricing:Models:0:Output", "10"),
            ("Mnemo:Pricing:Models:0:CacheRead", "1.25"),
            ("Mnemo:Pricing:Models:1:Model", "claude-sonnet-*"),
            ("Mnemo:Pricing:Models:1:Input", "3"),
            ("Mnemo:Pricing:Models:1:Output", "15"),
            ("Mnemo:Pricing:Models:1:CacheRead", "0.3"),
            ("Mnemo:Pricing:Models:1:CacheWrite", "3.75")), redis: redis ? "" : null);
        const string session = "usage-totals";
        for (var i = 0; i < s_usages.Length; i++)
        {
            await SendTurnAsync(proxy, Turn(s_usages[i].Dialect, $"Turn {i + 1}", stream: false, session, model: s_usages[i].Model));
            await WaitForWrittenAsync(proxy, session, i + 1);
        }

        var reply = await GetAsync(proxy, SessionPath(Tenant(ApiKey), session));

        Assert.That(reply.Status, Is.EqualTo(HttpStatusCode.OK), reply.Text);
        var totals = reply.Json.GetProperty("totals");
        Assert.That(totals.GetProperty("turns_written").GetInt64(), Is.EqualTo(5));
        Assert.That(totals.GetProperty("turns_stored").GetInt64(), Is.EqualTo(2), "MaxStoredTurns=2 keeps two");
        Assert.That(reply.Json.GetProperty("turns").GetArrayLength(), Is.EqualTo(2));
        // By hand, Anthropic's input normalised to the whole prompt: 1000 + 1500 + 2350 + 2100 + 2340.
        Assert.That(Tokens(totals), Is.EqualTo(new long[] { 9290, 787, 6860, 300 }), "all five turns, not the two kept");
        var byModel = totals.GetProperty("by_model");
        Assert.That(byModel.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "claude-sonnet-4-5", "gpt-4o" }));
        Assert.That(Tokens(byModel.GetProperty("gpt-4o")), Is.EqualTo(new long[] { 4600, 577, 2560, 0 }));
        Assert.That(Tokens(byModel.GetProperty("claude-sonnet-4-5")), Is.EqualTo(new long[] { 4690, 210, 4300, 300 }));

        // gpt-4o: (4600 - 2560) x 2.5 + 2560 x 1.25 + 577 x 10 = 14070 per million;
        // claude: (4690 - 4300 - 300) x 3 + 4300 x 0.3 + 300 x 3.75 + 210 x 15 = 5835 per million.
        Assert.That(byModel.GetProperty("gpt-4o").GetProperty("cost").GetDecimal(), Is.EqualTo(0.01407m));
        Assert.That(byModel.GetProperty("claude-sonnet-4-5").GetProperty("cost").GetDecimal(), Is.EqualTo(0.005835m));
        Assert.That(totals.GetProperty("cost").GetDecimal(), Is.EqualTo(0.019905m));
        Assert.That(totals.GetProperty("currency").GetString(), Is.EqualTo("EUR"));
        Assert.That(totals.GetProperty("cost_covers_all_tokens").GetBoolean(), Is.True);

        // The two kept turns are the last two, each with its own usage.
        var kept = reply.Json.GetProperty("turns").EnumerateArray().Select(t => t.GetProperty("usage")).ToArray();
        Assert.That(kept[0].GetProperty("input").GetInt64(), Is.EqualTo(2100));
        Assert.That(kept[0].GetProperty("cache_read").GetInt64(), Is.EqualTo(1536));
        Assert.That(kept[1].GetProperty("input").GetInt64(), Is.EqualTo(2340));
        Assert.That(kept[1].GetProperty("cache_write").GetInt64(), Is.EqualTo(0));
    }

    [TestCase(true, TestName = "Totals_ModelWithoutPrice_CostOfThePricedOnly_NotCoveringAll(Redis)")]
    [TestCase(false, TestName = "Totals_ModelWithoutPrice_CostOfThePricedOnly_NotCoveringAll(Embedded)")]
    public async Task Totals_ModelWithoutPrice_CostOfThePricedOnly_NotCoveringAll(bool redis)
    {
        AnswerWithChosenUsage();
        await using var proxy = await StartProxyAsync(Settings(
            ("Mnemo:Pricing:Models:0:Model", "gpt-4o"),
            ("Mnemo:Pricing:Models:0:Input", "2.5"),
            ("Mnemo:Pricing:Models:0:Output", "10")), redis: redis ? "" : null);
        const string session = "partly-priced";
        for (var i = 0; i < 3; i++)
        {
            await SendTurnAsync(proxy, Turn(s_usages[i].Dialect, $"Turn {i + 1}", stream: false, session, model: s_usages[i].Model));
            await WaitForWrittenAsync(proxy, session, i + 1);
        }

        var totals = (await GetAsync(proxy, SessionPath(Tenant(ApiKey), session))).Json.GetProperty("totals");

        // gpt-4o, cache reads at the input price: (1000 + 1500) x 2.5 + 500 x 10 = 11250 per million.
        Assert.That(totals.GetProperty("by_model").GetProperty("gpt-4o").GetProperty("cost").GetDecimal(), Is.EqualTo(0.01125m));
        Assert.That(totals.GetProperty("by_model").GetProperty("claude-sonnet-4-5").TryGetProperty("cost", out _), Is.False);
        Assert.That(totals.GetProperty("cost").GetDecimal(), Is.EqualTo(0.01125m));
        Assert.That(totals.GetProperty("currency").GetString(), Is.EqualTo("USD"));
        Assert.That(totals.GetProperty("cost_covers_all_tokens").GetBoolean(), Is.False, "claude's tokens have no price");
    }

    [TestCase(true, TestName = "Totals_RetriedWriteOfTheSameTurn_CountedOnce(Redis)")]
    [TestCase(false, TestName = "Totals_RetriedWriteOfTheSameTurn_CountedOnce(Embedded)")]
    public async Task Totals_RetriedWriteOfTheSameTurn_CountedOnce(bool redis)
    {
        await using var proxy = await StartProxyAsync(Settings(), redis: redis ? "" : null);
        var store = proxy.Service<IHistoryStore>();
        var session = new SessionKey(Tenant(ApiKey), "retried");
        var id = TurnCodec.NewId();
        var ts = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var usage = new TokenUsage(700, 50, 600, -1);
        var payload = TurnCodec.Encode(id, ts, DialectId.OpenAIChat, 10, usage, 0, static (w, _) =>
        {
            w.WriteStartObject();
            w.WriteString("role", "user");
            w.WriteString("content", "Hi");
            w.WriteEndObject();
        }, model: "gpt-4o");
        Assert.That(TurnCodec.TryRead(payload, out var view), Is.True);

        var first = await store.AppendAsync(new Turn(session, id, payload, view, "gpt-4o", ts, usage), CancellationToken.None);
        var retry = await store.AppendAsync(new Turn(session, id, payload, view, "gpt-4o", ts, usage), CancellationToken.None);
        var totals = (await GetAsync(proxy, SessionPath(session.Tenant, session.Id))).Json.GetProperty("totals");

        Assert.That((first, retry), Is.EqualTo((AppendResult.Written, AppendResult.Duplicate)));
        Assert.That(totals.GetProperty("turns_written").GetInt64(), Is.EqualTo(1));
        Assert.That(totals.GetProperty("turns_stored").GetInt64(), Is.EqualTo(1));
        Assert.That(Tokens(totals), Is.EqualTo(new long[] { 700, 50, 600, 0 }));
    }

    /// <summary>Every chat and Anthropic request is answered with the usage of <see cref="s_usages"/>, in request order.</summary>
    private void AnswerWithChosenUsage()
    {
        Upstream.Override = request =>
        {
            var (_, model, input, output, cacheRead, cacheWrite) = s_usages[Upstream.Requests.Count - 1];
            var text = $"Answer {Upstream.Requests.Count}";
            return (200, request.Path.EndsWith("/messages", StringComparison.Ordinal)
                ? JsonSerializer.Serialize(new
                {
                    id = "msg_01",
                    type = "message",
                    role = "assistant",
                    model,
                    content = new[] { new { type = "text", text } },
                    stop_reason = "end_turn",
                    stop_sequence = (string?)null,
                    usage = new { input_tokens = input, cache_creation_input_tokens = cacheWrite, cache_read_input_tokens = cacheRead, output_tokens = output },
                })
                : JsonSerializer.Serialize(new
                {
                    id = "chatcmpl-1",
                    @object = "chat.completion",
                    created = 1741569952,
                    model,
                    choices = new[] { new { index = 0, message = new { role = "assistant", content = text }, finish_reason = "stop" } },
                    usage = new { prompt_tokens = input, completion_tokens = output, total_tokens = input + output, prompt_tokens_details = new { cached_tokens = cacheRead } },
                }));
        };
    }

    private static long[] Tokens(JsonElement totals) => s_totalNames.Select(n => totals.GetProperty(n).GetInt64()).ToArray();

    /// <summary>Waits until <paramref name="count"/> turns of the session are written (the writer is asynchronous).</summary>
    private static Task<long> WaitForWrittenAsync(ProxyHost proxy, string session, long count) =>
        Eventually.ValueAsync(
            async () => await proxy.Service<IHistoryStore>().ExportAsync(new SessionKey(Tenant(ApiKey), session), CancellationToken.None) is { } record ? record.Totals.Turns : 0,
            n => n == count,
            $"{count} turns written");

    private Task<long> WaitForStoredAsync(ProxyHost proxy, string session, int count, bool redis) =>
        redis ? WaitForTurnsAsync(session, count) : WaitForWrittenAsync(proxy, session, count);

    /// <summary>The stored elements, read from Redis itself, or from the embedded store.</summary>
    private async Task<JsonElement[]> StoredElementsAsync(ProxyHost proxy, string session, bool redis)
    {
        if (redis)
        {
            return await StoredTurnsAsync(session);
        }

        var record = await proxy.Service<IHistoryStore>().ExportAsync(new SessionKey(Tenant(ApiKey), session), CancellationToken.None);
        return record!.Elements.Select(e => JsonDocument.Parse(e).RootElement.Clone()).ToArray();
    }
}
