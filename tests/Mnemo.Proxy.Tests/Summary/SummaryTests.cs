using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Summary;

/// <summary>
/// The rolling summary end to end: the real proxy, a real redis-server (or the embedded store), the fake upstream as
/// both the chat upstream and the summarizer.
/// </summary>
public sealed class SummaryTests : FunctionalTest
{
    private const string Marker = "Turns to fold in";

    /// <summary>Window of two turns, at most three stored, a summary once two unsummarised turns are outside the window.</summary>
    private static Dictionary<string, string?> Settings(int triggerTurns = 2) => new()
    {
        ["Mnemo:Memory:MaxContextTurns"] = "2",
        ["Mnemo:Memory:MaxStoredTurns"] = "3",
        ["Mnemo:Summary:Enabled"] = "true",
        ["Mnemo:Summary:Model"] = "summarizer-model",
        ["Mnemo:Summary:TriggerTurns"] = triggerTurns.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Mnemo:Summary:HardMaxStoredTurns"] = "50",
    };

    private static string Completion(string text) => JsonSerializer.Serialize(new
    {
        id = "chatcmpl-summary",
        @object = "chat.completion",
        model = "summarizer-model",
        choices = new[] { new { index = 0, message = new { role = "assistant", content = text }, finish_reason = "stop" } },
        usage = new { prompt_tokens = 50, completion_tokens = 10, total_tokens = 60 },
    });

    private static bool IsSummaryCall(RecordedRequest request) => request.BodyText.Contains(Marker, StringComparison.Ordinal);

    private List<RecordedRequest> SummaryCalls => Upstream.Requests.Where(IsSummaryCall).ToList();

    private async Task ChatAsync(ProxyHost proxy, string session, string question, long storedAfter)
    {
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn(question), session));
        Assert.That((int)response.StatusCode, Is.EqualTo(200), question);

        // This question's turn written, not only the count: once the list is trimmed, its length stays where it was.
        await Eventually.ValueAsync(
            () => StoredTurnsAsync(session), t => t.Length == storedAfter && Questions(t)[^1] == question, $"{question} stored, {storedAfter} turns");
    }

    private static string[] Contents(RecordedRequest request) =>
        JsonDocument.Parse(request.Body).RootElement.GetProperty("messages").EnumerateArray()
            .Select(m => m.GetProperty("role").GetString() + ":" + m.GetProperty("content").GetString()).ToArray();

    [Test]
    public async Task Summary_TurnsLeaveTheWindow_CallCarriesEvictedTurnsAndNextRequestCarriesSummaryBeforeWindow()
    {
        Upstream.Override = r => IsSummaryCall(r) ? (200, Completion("SUMMARY: the user asked q1 to q3.")) : null;
        await using var proxy = await StartProxyAsync(Settings());
        const string session = "sum-1";
        for (var i = 1; i <= 5; i++)
        {
            await ChatAsync(proxy, session, "q" + i, i);
        }

        // Request 5 found two turns outside its window of two; the run, after q5's write, folds what left it: q1..q3.
        var call = await Eventually.ValueAsync(() => Task.FromResult(SummaryCalls.Count > 0 ? SummaryCalls[0] : null), c => c is not null, "a summary call");
        Assert.That(call!.Path, Is.EqualTo("/v1/chat/completions"), "the triggering request's path");
        Assert.That(call.Headers["Authorization"], Is.EqualTo("Bearer " + ApiKey), "the triggering request's credentials");
        var sent = JsonDocument.Parse(call.Body).RootElement;
        Assert.That(sent.GetProperty("model").GetString(), Is.EqualTo("summarizer-model"));
        var transcript = sent.GetProperty("messages")[1].GetProperty("content").GetString()!;
        Assert.That(transcript, Does.Contain("User: q1").And.Contain("User: q2").And.Contain("User: q3"));
        Assert.That(transcript, Does.Contain("Assistant: Hello! How can I assist you today?"));
        Assert.That(transcript.IndexOf("User: q1", StringComparison.Ordinal), Is.LessThan(transcript.IndexOf("User: q2", StringComparison.Ordinal)));
        Assert.That(transcript, Does.Not.Contain("User: q4"), "q4 and q5 are still in the window");

        await Eventually.ValueAsync(() => Redis.Db.HashGetAsync(MetaKey(session), "s"), v => v.HasValue, "the stored summary");
        // The sixth write trims the covered q1..q3 (MaxStoredTurns is 3).
        await ChatAsync(proxy, session, "q6", 3);
        Assert.That(Questions(await StoredTurnsAsync(session)), Is.EqualTo(new[] { "q4", "q5", "q6" }));

        var sixth = Upstream.Requests.Where(r => !IsSummaryCall(r)).Last();
        Assert.That(Contents(sixth), Is.EqualTo(new[]
        {
            "developer:You are a helpful assistant.",
            "system:SUMMARY: the user asked q1 to q3.",
            "user:q4", "assistant:Hello! How can I assist you today?",
            "user:q5", "assistant:Hello! How can I assist you today?",
            "user:q6",
        }));
        Assert.That(await MetricAsync(proxy, "mnemo_summaries_total{outcome=\"written\"}"), Is.GreaterThanOrEqualTo(1));
        Assert.That(await MetricAsync(proxy, "mnemo_stage_duration_seconds_count{stage=\"summary\",dialect=\"openai-chat\"}"), Is.GreaterThanOrEqualTo(1));
    }

    [Test]
    public async Task Summary_SummarizerReturns500_RequestsKeepWorkingAndNoUnsummarisedTurnIsTrimmed()
    {
        var fail = true;
        Upstream.Override = r => !IsSummaryCall(r) ? null
            : fail ? (500, """{"error":{"message":"boom","type":"server_error"}}""") : (200, Completion("SUMMARY: q1 to q7."));
        await using var proxy = await StartProxyAsync(Settings());
        const string session = "sum-500";
        for (var i = 1; i <= 8; i++)
        {
            var (response, body) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("q" + i), session));
            Assert.That((int)response.StatusCode, Is.EqualTo(200));
            Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(),
                Is.EqualTo("Hello! How can I assist you today?"));
            await WaitForTurnsAsync(session, i);
        }

        await Eventually.ValueAsync(() => MetricAsync(proxy, "mnemo_summaries_total{outcome=\"failed\"}"), n => n >= 1, "a failed summary counted");
        Assert.That(Questions(await StoredTurnsAsync(session)), Is.EqualTo(new[] { "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8" }),
            "MaxStoredTurns is 3, but no turn goes before a summary covers it");
        Assert.That((await Redis.Db.HashGetAsync(MetaKey(session), "s")).HasValue, Is.False);
        Assert.That(proxy.Logs.All, Does.Not.Contain("boom").And.Not.Contain(ApiKey).And.Not.Contain(session), "logged without content");

        // The window still serves: the eighth request carried q6 and q7.
        Assert.That(Contents(Upstream.Requests.Where(r => !IsSummaryCall(r)).Last()).Where(c => c.StartsWith("user:", StringComparison.Ordinal)),
            Is.EqualTo(new[] { "user:q6", "user:q7", "user:q8" }));

        // The ninth request triggers a run that succeeds: after q9's write it folds q1..q7 (q8 and q9 are the window).
        fail = false;
        await ChatAsync(proxy, session, "q9", 9);
        await Eventually.ValueAsync(() => Redis.Db.HashGetAsync(MetaKey(session), "s"), v => v.HasValue, "the stored summary");
        var coveredId = (string?)await Redis.Db.HashGetAsync(MetaKey(session), "sid");
        var stored = await StoredTurnsAsync(session);
        var coveredAt = Array.FindIndex(stored, t => t.GetProperty("id").GetString() == coveredId);
        Assert.That(Questions(stored)[coveredAt], Is.EqualTo("q7"), "the summary covers what left the window");
        Assert.That(SummaryCalls[^1].BodyText, Does.Contain("User: q1").And.Contain("User: q7").And.Not.Contain("User: q8"));

        // The next write trims only covered turns, down to MaxStoredTurns.
        await ChatAsync(proxy, session, "q10", 3);
        Assert.That(Questions(await StoredTurnsAsync(session)), Is.EqualTo(new[] { "q8", "q9", "q10" }),
            "the covered turns went; every turn is in the list or in the summary");
    }

    [Test]
    public async Task Summary_EmbeddedStore_NextRequestCarriesSummary()
    {
        Upstream.Override = r => IsSummaryCall(r) ? (200, Completion("SUMMARY: embedded.")) : null;
        await using var proxy = await StartProxyAsync(Settings(), redis: null);
        const string session = "sum-embedded";
        for (var i = 1; i <= 5; i++)
        {
            var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("q" + i), session));
            Assert.That((int)response.StatusCode, Is.EqualTo(200));
            // Embedded: a turn is visible to the next read as soon as the response is complete.
        }

        await Eventually.ValueAsync(() => MetricAsync(proxy, "mnemo_summaries_total{outcome=\"written\"}"), n => n >= 1, "a written summary");
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("q6"), session));
        var contents = Contents(Upstream.Requests.Where(r => !IsSummaryCall(r)).Last());
        Assert.That(contents[1], Is.EqualTo("system:SUMMARY: embedded."));
        Assert.That(contents.Where(c => c.StartsWith("user:", StringComparison.Ordinal)), Is.EqualTo(new[] { "user:q4", "user:q5", "user:q6" }));
    }

    [Test]
    public async Task Summary_Off_NoSummaryCallAndTrimsToMaxStoredTurns()
    {
        var settings = Settings();
        settings["Mnemo:Summary:Enabled"] = "false";
        await using var proxy = await StartProxyAsync(settings);
        const string session = "sum-off";
        for (var i = 1; i <= 6; i++)
        {
            await ChatAsync(proxy, session, "q" + i, Math.Min(i, 3));
        }

        Assert.That(Questions(await StoredTurnsAsync(session)), Is.EqualTo(new[] { "q4", "q5", "q6" }));
        Assert.That(SummaryCalls, Is.Empty);
    }

    [Test]
    public async Task Summary_On_EachRequestStillMakesOneReadAndOneWriteRoundTrip()
    {
        Upstream.Override = r => IsSummaryCall(r) ? (200, Completion("SUMMARY: q1.")) : null;
        await using var relay = RedisRelay.StartCounting(Redis);
        var settings = Settings();
        foreach (var (key, value) in RedisRelay.PatientReads)
        {
            settings[key] = value;
        }

        await using var proxy = await StartProxyAsync(settings, redis: relay.ConnectionString);
        const string session = "sum-trips";
        for (var i = 1; i <= 3; i++)
        {
            await ChatAsync(proxy, session, "q" + i, i);
        }

        // The fourth request's read finds q1 outside the window; the fifth's, q1 and q2: a run is queued after it.
        await ChatAsync(proxy, session, "q4", 4);
        relay.Reset();
        await ChatAsync(proxy, session, "q5", 5);
        await Task.Delay(100);
        var requestTrips = relay.DataRoundTrips.Take(2).Select(t => t.ToString()).ToArray();
        Assert.That(requestTrips, Is.EqualTo(new[] { "HMGET+LRANGE+LLEN+EXPIRE+EXPIRE", "EVALSHA" }),
            "the summary, the length and the covered count ride in the read's one batch");
        await Eventually.ValueAsync(() => Redis.Db.HashGetAsync(MetaKey(session), "s"), v => v.HasValue, "the stored summary");

        relay.Reset();
        await ChatAsync(proxy, session, "q6", 3);
        await Task.Delay(100);
        Assert.That(relay.DataRoundTrips.Select(t => t.ToString()), Is.EqualTo(new[] { "HMGET+LRANGE+LLEN+EXPIRE+EXPIRE", "EVALSHA" }),
            "with a summary stored, a request still makes one read and one write");
        Assert.That(Contents(Upstream.Requests.Where(r => !IsSummaryCall(r)).Last())[1], Is.EqualTo("system:SUMMARY: q1."));
    }

    private static string[] Questions(JsonElement[] stored) =>
        stored.Select(t => t.GetProperty("messages")[0].GetProperty("content").GetString()!).ToArray();

    private static async Task<double> MetricAsync(ProxyHost proxy, string series)
    {
        var text = await proxy.Management.GetStringAsync("/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
