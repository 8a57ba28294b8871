using System.Globalization;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.History;

/// <summary>
/// What the Redis topology tests check under traffic: sequential conversations on several sessions through the real
/// proxy while Redis changes under them, then what the clients saw and what Redis kept.
/// </summary>
internal static class FailoverScenario
{
    /// <summary>Between a session's turns: six sessions make about a hundred requests a second on this machine.</summary>
    public static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(40);

    /// <summary>The default <c>Mnemo:Memory:MaxContextTurns</c>: a remembered request carries this many earlier turns at most.</summary>
    public const int Window = 20;

    /// <summary>
    /// The proxy's settings: nothing trimmed (every completed turn must be found at the end) and the given consistency.
    /// Timeouts, retries and breakers are the defaults: the figures are those of a deployment that changed nothing.
    /// </summary>
    public static Dictionary<string, string?> Settings(string consistency) => new()
    {
        ["Mnemo:Memory:MaxStoredTurns"] = "10000",
        ["Mnemo:Memory:Consistency"] = consistency,
    };

    /// <summary>
    /// Kills the master serving the first session under traffic: every request must still succeed (memory
    /// <c>degraded</c> at worst), memory must come back without a proxy restart, and every turn whose answer reached
    /// its client must be stored exactly once, in order. The figures are written to the test log.
    /// </summary>
    public static async Task MasterKilledAsync(
        string name,
        ProxyHost proxy,
        FakeUpstream upstream,
        string[] sessions,
        Func<string, Task<RedisServer>> masterOf,
        Func<Task> failedOver,
        Func<string, Task<IServer>> newMasterOf,
        Func<string, Task<RedisValue[]>> storedTurns)
    {
        var load = ConversationLoad.Start(proxy, upstream, sessions, Pause);
        TimeSpan killedAt, failedOverAt;
        try
        {
            await load.WaitUntilAsync(l => l.Sessions.All(s => l.Of(s).Count(e => e.Memory == "hit") >= 3), "three remembered turns per session", TimeSpan.FromSeconds(20));
            var victim = await masterOf(sessions[0]);
            killedAt = load.Now;
            await victim.StopAsync();
            await failedOver();
            failedOverAt = load.Now;
            await load.WaitUntilAsync(
                l => l.Sessions.All(s => l.Of(s) is var x && x.Count(e => e.Started > failedOverAt && e.Memory == "hit") >= 3 && x[^1].Memory == "hit"),
                "every session to be remembered again", TimeSpan.FromSeconds(30));
        }
        finally
        {
            await load.StopAsync();
        }

        // The write-back retries what failed; it is given more than its whole retry budget (about 16 s) before counting.
        var stored = await StoredAsync(sessions, storedTurns);
        for (var deadline = DateTime.UtcNow.AddSeconds(30); sessions.Any(s => stored[s].Length < load.Completed(s).Length) && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(200);
            stored = await StoredAsync(sessions, storedTurns);
        }

        await ReportAsync(name, proxy, load, killedAt, failedOverAt, stored);
        // The promoted replica had not loaded the write script: a NOSCRIPT here shows the store's fallback to EVAL ran.
        var errors = await (await newMasterOf(sessions[0])).InfoRawAsync("errorstats") ?? "";
        TestContext.Out.WriteLine($"[{name}] errors answered by the new master: {string.Join(' ', errors.Split('\n').Where(l => l.StartsWith("errorstat_", StringComparison.Ordinal)).Select(l => l.Trim()))}");

        var exchanges = load.All.ToArray();
        Assert.That(exchanges.Where(e => !e.Completed).Select(e => e.ToString()), Is.Empty, "every request succeeded with the whole answer");
        Assert.That(exchanges.Where(e => e.Turn == 1 ? e.Memory is not ("empty" or "degraded") : e.Memory is not ("hit" or "degraded")).Select(e => e.ToString()),
            Is.Empty, "memory was remembered or degraded, never silently empty");
        Assert.That(exchanges.Where(e => e.Memory == "hit" && e.ContextTurns != Math.Min(Window, e.Turn - 1)).Select(e => e.ToString()),
            Is.Empty, "a remembered request carried every earlier turn (up to the window)");
        foreach (var session in sessions)
        {
            Assert.That(stored[session], Is.EqualTo(load.Completed(session)), $"{session}: every completed turn stored once, in order");
        }
    }

    /// <summary>The user question of each stored turn, oldest first.</summary>
    public static string[] Questions(RedisValue[] turns) =>
        [.. turns.Select(t => JsonDocument.Parse((byte[])t!).RootElement.GetProperty("messages")[0].GetProperty("content").GetString()!)];

    /// <summary>The write-back counters, as <c>outcome=value</c> pairs.</summary>
    public static async Task<string> WriteBackCountersAsync(ProxyHost proxy)
    {
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        return string.Join(", ", metrics.Split('\n')
            .Where(l => l.StartsWith("mnemo_writeback_total{", StringComparison.Ordinal))
            .Select(l => l.Replace("mnemo_writeback_total{outcome=\"", "", StringComparison.Ordinal).Replace("\"} ", "=", StringComparison.Ordinal)));
    }

    private static async Task<Dictionary<string, string[]>> StoredAsync(string[] sessions, Func<string, Task<RedisValue[]>> storedTurns)
    {
        var stored = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var session in sessions)
        {
            stored[session] = Questions(await storedTurns(session));
        }

        return stored;
    }

    private static async Task ReportAsync(
        string name, ProxyHost proxy, ConversationLoad load, TimeSpan killedAt, TimeSpan failedOverAt, Dictionary<string, string[]> stored)
    {
        static string At(TimeSpan t) => t.TotalSeconds.ToString("+0.00s;-0.00s", CultureInfo.InvariantCulture);
        var output = TestContext.Out;
        var exchanges = load.All.ToArray();
        output.WriteLine($"[{name}] master killed; its replica took over (as the test saw Redis) after {At(failedOverAt - killedAt)}");

        var degraded = exchanges.Where(e => e.Memory == "degraded").ToArray();
        if (degraded.Length == 0)
        {
            output.WriteLine($"[{name}] memory unavailable: never (no degraded response)");
        }
        else
        {
            var first = degraded.Min(e => e.Started);
            var last = degraded.Max(e => e.Started);
            var back = load.Sessions.Select(s => load.Of(s).FirstOrDefault(e => e.Started > last && e.Memory == "hit")?.Started ?? load.Now).Max();
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{name}] memory unavailable: {(back - first).TotalSeconds:0.00}s — {degraded.Length} of {exchanges.Length} responses degraded, from {At(first - killedAt)} to {At(last - killedAt)} after the kill; every session remembered again by {At(back - killedAt)}"));
        }

        var slowest = exchanges.MaxBy(e => e.Ended - e.Started)!;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"[{name}] slowest response: {(slowest.Ended - slowest.Started).TotalMilliseconds:0} ms at {At(slowest.Started - killedAt)}; failed requests: {exchanges.Count(e => !e.Completed)}"));

        int completed = 0, kept = 0;
        foreach (var session in load.Sessions)
        {
            var done = load.Completed(session);
            var found = stored[session];
            completed += done.Length;
            kept += done.Count(found.Contains);
            var missing = load.Of(session).Where(e => e.Completed && !found.Contains(e.Question)).ToArray();
            output.WriteLine($"[{name}]   {session}: {done.Length} completed, {found.Length} stored, {missing.Length} missing, {found.Length - found.Distinct().Count()} duplicated"
                + (missing.Length == 0 ? "" : $" (missing: {string.Join(", ", missing.Select(e => $"#{e.Turn} answered {At(e.Ended - killedAt)}"))})"));
        }

        output.WriteLine($"[{name}] turns kept vs completed: {kept} / {completed}; write-back: {await WriteBackCountersAsync(proxy)}");
        var opened = proxy.Logs.Lines.Where(l => l.Contains("circuit opened", StringComparison.Ordinal)).Select(l => l.Contains("Redis read", StringComparison.Ordinal) ? "read" : "write").ToArray();
        output.WriteLine($"[{name}] circuit breaker opened: {(opened.Length == 0 ? "never" : string.Join(", ", opened))}");
    }
}
