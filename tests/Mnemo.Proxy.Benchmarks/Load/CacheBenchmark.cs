using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Mnemo.Proxy.Tests.Common;
using StackExchange.Redis;

namespace Mnemo.Proxy.Benchmarks.Load;

/// <summary>
/// The session cache's steps of the benchmark: two replicas alternating on one session (staleness and invalidation
/// delay) and many warm sessions held at once (memory).
/// </summary>
internal static class CacheBenchmark
{
    /// <summary>
    /// Two proxies on one Redis take turns answering one session, in Strict and then in Replica consistency. A request
    /// is stale when its history lacks a turn the other replica answered before it was sent (X-Mnemo-Context-Turns).
    /// </summary>
    public static async Task AlternationAsync(Report report, RedisServer redis, Uri upstreamUrl, HttpClient client, BenchOptions options)
    {
        var alternations = options.Smoke ? 40 : 1000;
        var window = (alternations + 10).ToString(CultureInfo.InvariantCulture);
        string[] settings = [$"--Mnemo:Memory:MaxContextTurns={window}", $"--Mnemo:Memory:MaxStoredTurns={window}"];
        using var a = await ProxyInstance.StartAsync(upstreamUrl, redis.ConnectionString, settings);
        using var b = await ProxyInstance.StartAsync(upstreamUrl, redis.ConnectionString, settings);
        await a.WaitForCacheAsync();
        await b.WaitForCacheAsync();
        report.Alternations = alternations;

        Step($"two replicas alternating on one session, Strict, {alternations} requests");
        (report.StrictStale, _) = await AlternateAsync(client, a, b, "alt-strict", "strict", alternations);

        Step($"two replicas alternating on one session, Replica, {alternations} requests");
        var before = await DelayBucketsAsync(a, b);
        var stagesBefore = (await a.StagesAsync()).GetValueOrDefault("writeback");
        (report.ReplicaStale, report.ReplicaStaleMaxAgeMs) = await AlternateAsync(client, a, b, "alt-replica", "replica", alternations);
        var after = await DelayBucketsAsync(a, b);
        var stagesAfter = (await a.StagesAsync()).GetValueOrDefault("writeback");
        var delta = after.Select(x => (x.Le, x.Count - before.Single(y => y.Le == x.Le).Count)).ToList();
        report.InvalidationSamples = (long)delta[^1].Item2;
        report.InvalidationDelayP50Ms = 1000 * Quantile(delta, 0.5);
        report.InvalidationDelayP99Ms = 1000 * Quantile(delta, 0.99);
        report.ReplicaWriteBackMs = stagesAfter.Count > stagesBefore.Count ? 1000 * (stagesAfter.Sum - stagesBefore.Sum) / (stagesAfter.Count - stagesBefore.Count) : double.NaN;
    }

    private static async Task<(int Stale, double MaxAgeMs)> AlternateAsync(HttpClient client, ProxyInstance a, ProxyInstance b, string session, string consistency, int alternations)
    {
        var stale = 0;
        var maxAge = 0.0;
        long lastEnded = 0;
        for (var i = 0; i < alternations; i++)
        {
            var proxy = i % 2 == 0 ? a : b;
            var factory = new RequestFactory(proxy.Url, "inject", stream: false, session, sessions: 1) { Consistency = consistency };
            using var request = factory.Create(0, i);
            var sent = Stopwatch.GetTimestamp();
            using var response = await client.SendAsync(request);
            _ = await response.Content.ReadAsByteArrayAsync();
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"an alternation request failed: {(int)response.StatusCode}");
            }

            var turns = response.Headers.TryGetValues("X-Mnemo-Context-Turns", out var values) ? int.Parse(values.First(), CultureInfo.InvariantCulture) : 0;
            if (turns < i)
            {
                stale++;
                maxAge = Math.Max(maxAge, Stopwatch.GetElapsedTime(lastEnded, sent).TotalMilliseconds);
            }

            lastEnded = Stopwatch.GetTimestamp();
        }

        return (stale, maxAge);
    }

    /// <summary>The invalidation delay histogram's cumulative buckets, both replicas summed.</summary>
    private static async Task<List<(double Le, double Count)>> DelayBucketsAsync(ProxyInstance a, ProxyInstance b)
    {
        var buckets = new SortedDictionary<double, double>();
        foreach (var proxy in new[] { a, b })
        {
            foreach (var line in (await proxy.MetricsAsync()).Split('\n'))
            {
                const string Head = "mnemo_cache_invalidation_delay_seconds_bucket{le=\"";
                if (!line.StartsWith(Head, StringComparison.Ordinal))
                {
                    continue;
                }

                var le = line[Head.Length..line.IndexOf('"', Head.Length)];
                var bound = le == "+Inf" ? double.PositiveInfinity : double.Parse(le, CultureInfo.InvariantCulture);
                buckets[bound] = buckets.GetValueOrDefault(bound) + double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return [.. buckets.Select(kv => (kv.Key, kv.Value))];
    }

    /// <summary>As Prometheus's histogram_quantile: linear within the bucket the rank falls in.</summary>
    private static double Quantile(List<(double Le, double Count)> cumulative, double q)
    {
        var total = cumulative[^1].Count;
        if (total <= 0)
        {
            return double.NaN;
        }

        var rank = q * total;
        double lower = 0, below = 0;
        foreach (var (le, count) in cumulative)
        {
            if (count >= rank)
            {
                return double.IsPositiveInfinity(le) ? lower : lower + ((le - lower) * (rank - below) / Math.Max(count - below, 1e-9));
            }

            lower = le;
            below = count;
        }

        return lower;
    }

    /// <summary>
    /// Sessions of 20 stored turns (copies of a benchmark session's turns, put in Redis directly) each read once and
    /// written once through one proxy, then read again: how many it holds, in how many bytes of its cache, at what RSS.
    /// </summary>
    public static async Task MemoryHeldAsync(Report report, RedisServer redis, Uri upstreamUrl, HttpClient client, BenchOptions options, string templateSession)
    {
        var sessions = options.Smoke ? 200 : 10_000;
        const int Turns = 20;
        // Each session's window is about 9.5 KB here (20 elements of ~380 B with their overhead): 64 MiB, the default,
        // holds about 6,500 of them, and a pass over 10,000 in a fixed order then finds none (least recently used goes
        // first). So this step configures a size that holds them.
        const long Limit = 128L * 1024 * 1024;
        Step($"memory held: {sessions} warm sessions of {Turns} turns, Mnemo:Cache:SizeLimit={Limit}");
        using var proxy = await ProxyInstance.StartAsync(upstreamUrl, redis.ConnectionString, $"--Mnemo:Cache:SizeLimit={Limit}");
        await proxy.WaitForCacheAsync();
        report.HeldRssBeforeMb = proxy.RssMb;
        report.HeldManagedHeapBeforeMb = MetricText.Value(await proxy.MetricsAsync(), "dotnet_total_memory_bytes") / 1048576;

        var tenant = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(RequestFactory.ApiKey)).AsSpan(0, 16));
        var template = await redis.Db.ListRangeAsync($"mnemo:v1:{{{tenant}:{templateSession}}}:turns", -Turns, -1);
        for (var start = 0; start < sessions; start += 500)
        {
            var batch = redis.Db.CreateBatch();
            var calls = new List<Task>();
            for (var k = start; k < Math.Min(sessions, start + 500); k++)
            {
                var key = $"mnemo:v1:{{{tenant}:held-{k}}}";
                calls.Add(batch.ListRightPushAsync(key + ":turns", template));
                // A generation, as a written session has: the proxy's first write then updates its copy in place.
                calls.Add(batch.HashSetAsync(key + ":meta", [new HashEntry("g", 1000), new HashEntry("n", Turns)]));
                calls.Add(batch.KeyExpireAsync(key + ":turns", TimeSpan.FromHours(1)));
                calls.Add(batch.KeyExpireAsync(key + ":meta", TimeSpan.FromHours(1)));
            }

            batch.Execute();
            await Task.WhenAll(calls);
        }

        var factory = new RequestFactory(proxy.Url, "inject", stream: false, "held", sessions);
        await PassAsync(client, factory, sessions, 0);
        await Task.Delay(1000);
        var before = MetricText.Value(await proxy.MetricsAsync(), "mnemo_redis_round_trips_total{op=\"read\"}");
        await PassAsync(client, factory, sessions, 1);
        var metrics = await proxy.MetricsAsync();
        report.HeldSessions = sessions;
        report.HeldSecondPassReads = MetricText.Value(metrics, "mnemo_redis_round_trips_total{op=\"read\"}") - before;
        report.HeldEntries = MetricText.Value(metrics, "mnemo_cache_entries");
        report.HeldCacheBytes = MetricText.Value(metrics, "mnemo_cache_bytes");
        report.HeldCacheLimitBytes = Limit;
        report.HeldRssAfterMb = proxy.RssMb;
        report.HeldManagedHeapMb = MetricText.Value(metrics, "dotnet_total_memory_bytes") / 1048576;
        report.HeldElementBytes = template.Length == 0 ? 0 : template.Average(t => ((byte[])t!).Length);
    }

    private static async Task PassAsync(HttpClient client, RequestFactory factory, int sessions, int sequence)
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 32).Select(async _ =>
        {
            int k;
            while ((k = Interlocked.Increment(ref next)) < sessions)
            {
                var sample = await LoadGenerator.SendAsync(client, factory.Create(k, sequence), factory);
                if (!sample.Ok)
                {
                    throw new InvalidOperationException("a memory-held request failed");
                }
            }
        }));
    }

    private static void Step(string text) => Console.WriteLine($"  [{DateTime.Now:HH:mm:ss}] {text}");
}
