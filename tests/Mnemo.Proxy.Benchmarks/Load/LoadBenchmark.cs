using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Benchmarks.Load;

/// <summary>
/// The end-to-end benchmark: redis-server, the fake LLM and Mnemo as separate processes on loopback, every scenario in
/// one run so the rows compare. Prints a table and writes JSON.
/// </summary>
internal static class LoadBenchmark
{
    private const int Sessions = 32;
    // A ratio or mean over an empty run is NaN; the report says so rather than failing to write.
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };
    private const int HistoryTurns = 20;
    private static readonly TimeSpan s_delayEachWay = TimeSpan.FromMilliseconds(5);

    public static async Task<int> RunAsync(BenchOptions options)
    {
        var report = new Report
        {
            Machine = ProcStats.Machine(),
            Options = options.Describe(),
            ChunkTokens = options.ChunkTokens,
            SlowStreams = $"{options.SlowStreamTokens} tokens {options.SlowStreamDelayMs} ms apart",
        };
        Console.WriteLine($"Mnemo benchmark: {report.Machine}");
        Console.WriteLine($"settings: {report.Options}");

        await using var redis = await RedisServer.StartAsync();
        using var upstream = StartUpstream(options.Tokens, out var upstreamUrl);
        await WaitForPortAsync(upstreamUrl);
        using var client = LoadGenerator.CreateClient();
        report.RedisRttMs = await RedisRoundTripAsync(redis);
        Step($"loopback Redis round trip (PING, p50): {report.RedisRttMs:F3} ms");

        if (options.HeldOnly)
        {
            // Only the memory-held step (its sessions copy the seeded bench-0's turns).
            using (var seeder = await ProxyInstance.StartAsync(upstreamUrl, redis.ConnectionString))
            {
                await SeedAsync(client, seeder.Url, "bench", 1);
            }

            await CacheBenchmark.MemoryHeldAsync(report, redis, upstreamUrl, client, options, "bench-0");
            Console.WriteLine(FormattableString.Invariant(
                $"held {report.HeldEntries} of {report.HeldSessions}, {report.HeldCacheBytes / 1048576:F1} MiB of {report.HeldCacheLimitBytes / 1048576:F0} MiB, second pass reads {report.HeldSecondPassReads}, RSS {report.HeldRssBeforeMb:F0} -> {report.HeldRssAfterMb:F0} MB, managed heap {report.HeldManagedHeapMb:F0} MB"));
            return 0;
        }

        using (var proxy = await ProxyInstance.StartAsync(upstreamUrl, redis.ConnectionString))
        {
            await proxy.WaitForCacheAsync();
            Step($"seeding {Sessions} sessions with {HistoryTurns} turns");
            await SeedAsync(client, proxy.Url, "bench", Sessions);
            report.HistoryBytes = await HistoryBytesAsync(redis, "bench-0");
            Step($"history injected per memory request: {report.HistoryBytes} bytes in {HistoryTurns} turns");

            if (options.OpenRate > 0)
            {
                // Only the open loop, at a given rate: a quick look at one load (the table's other sections stay empty).
                foreach (var stream in new[] { false, true })
                {
                    foreach (var (scenario, mode, expect) in Scenarios)
                    {
                        var factory = new RequestFactory(scenario == "direct" ? upstreamUrl : proxy.Url, mode, stream, "bench") { ExpectMemory = expect };
                        var row = await MeasureOpenAsync(scenario, factory, options.OpenRate, scenario == "direct" ? null : proxy, client, options);
                        var text = await proxy.MetricsAsync();
                        Console.WriteLine(FormattableString.Invariant(
                            $"    {scenario} {(stream ? "stream" : "json")}: p50 {row.P50:F3} ms p99 {row.P99:F3} ms errors {row.Errors} RSS {row.RssMb:F0} MB, queue after {MetricText.Value(text, "mnemo_writeback_queue_depth")}; {CacheSoFar(text)}"));
                    }
                }

                return 0;
            }

            // --closed also measures memory with the session cache off, interleaved with the rest: the cache's effect
            // within one run (the VM's speed drifts too much between runs to compare them). A second proxy on the same
            // Redis, with sessions of its own: its writes announce sessions the first proxy does not hold.
            using var uncached = options.ClosedOnly ? await ProxyInstance.StartAsync(upstreamUrl, redis.ConnectionString, "--Mnemo:Cache:Enabled=false") : null;
            if (uncached is not null)
            {
                Step($"seeding {Sessions} more sessions through a proxy with the session cache off");
                await SeedAsync(client, uncached.Url, "uncached", Sessions);
            }

            foreach (var stream in new[] { false, true })
            {
                foreach (var concurrency in new[] { 1, 32 })
                {
                    var scenarios = Scenarios.Select(s => (s.Scenario, Factory: new RequestFactory(s.Scenario == "direct" ? upstreamUrl : proxy.Url, s.Mode, stream, "bench") { ExpectMemory = s.Expect }, Proxy: s.Scenario == "direct" ? null : proxy)).ToList();
                    if (uncached is not null)
                    {
                        scenarios.Add(("proxy-uncached", new RequestFactory(uncached.Url, "inject", stream, "uncached") { ExpectMemory = "hit" }, uncached));
                    }

                    var rows = await MeasureInterleavedAsync(scenarios, concurrency, client, options);
                    report.Closed.AddRange(rows);
                    if (options.ClosedOnly)
                    {
                        var (direct, off, memory) = (rows[0], rows[1], rows[2]);
                        Console.WriteLine(FormattableString.Invariant(
                            $"    {(stream ? "stream" : "json")} c={concurrency}: p50 direct {direct.P50:F3} off {off.P50:F3} memory {memory.P50:F3} ms; memory adds {(memory.P50 - direct.P50) / (off.P50 - direct.P50):F2}x what off adds; throughput memory/off {100 * memory.Throughput / off.Throughput:F0}%; CPU us/req off {off.CpuMicrosecondsPerRequest:F0} memory {memory.CpuMicrosecondsPerRequest:F0}; errors {direct.Errors + off.Errors + memory.Errors}"));
                        var none = rows[3];
                        Console.WriteLine(FormattableString.Invariant(
                            $"      cache off: p50 {none.P50:F3} ms; adds {(none.P50 - direct.P50) / (off.P50 - direct.P50):F2}x what off adds; throughput against off {100 * none.Throughput / off.Throughput:F0}%; CPU us/req {none.CpuMicrosecondsPerRequest:F0}; errors {none.Errors}"));
                        // Whether the memory requests were served as the ratios assume: warm, from the session cache.
                        Console.WriteLine($"      {CacheSoFar(await proxy.MetricsAsync())}");
                    }
                }
            }

            if (options.ClosedOnly)
            {
                return 0;
            }

            // Open loop at half the slowest closed-loop throughput at concurrency 32: a load all three can carry.
            foreach (var stream in new[] { false, true })
            {
                var rate = Math.Max(10, Math.Round(0.5 * report.Closed.Where(r => r.Stream == stream && r.Concurrency == 32).Min(r => r.Throughput) / 10) * 10);
                foreach (var (scenario, mode, expect) in Scenarios)
                {
                    var factory = new RequestFactory(scenario == "direct" ? upstreamUrl : proxy.Url, mode, stream, "bench") { ExpectMemory = expect };
                    report.Open.Add(await MeasureOpenAsync(scenario, factory, rate, scenario == "direct" ? null : proxy, client, options));
                }
            }

            // Allocations against the number of chunks: the same streamed answer in 20 chunks and in 500.
            foreach (var (scenario, mode, expect) in Scenarios.Skip(1))
            {
                foreach (var tokens in new[] { 20, options.ChunkTokens })
                {
                    // A new session per request: the history read stays empty, so only the tee and the stored answer vary.
                    // Tokens 1 ms apart, as an LLM paces them: the proxy then waits on the upstream for every chunk.
                    var factory = new RequestFactory(proxy.Url, mode, stream: true, $"chunks-{tokens}", sessions: 1) { Tokens = tokens, TokenDelayMs = 1, SessionPerRequest = true };
                    report.Chunks.Add(await MeasureAllocationsAsync(scenario, factory, tokens == 20 ? options.ChunkRequests * 5 : options.ChunkRequests, proxy, client) with { Tokens = tokens });
                }
            }

            report.MainPeakRssMb = proxy.PeakRssMb;
        }

        await CountRoundTripsAsync(report, redis, upstreamUrl, client, options);
        await DelayModeAsync(report, redis, upstreamUrl, client, options);
        await CacheBenchmark.AlternationAsync(report, redis, upstreamUrl, client, options);
        await CacheBenchmark.MemoryHeldAsync(report, redis, upstreamUrl, client, options, "bench-0");
        await SlowStreamsAsync(report, redis, upstreamUrl, options);

        report.Print();
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.JsonPath))!);
        await File.WriteAllTextAsync(options.JsonPath, JsonSerializer.Serialize(report, s_json));
        Console.WriteLine($"JSON: {Path.GetFullPath(options.JsonPath)}");
        return 0;
    }

    /// <summary>The proxy's session-cache counters so far (all scenarios): whether memory requests were served warm.</summary>
    private static string CacheSoFar(string metrics)
    {
        double M(string series) => MetricText.Value(metrics, series);
        return FormattableString.Invariant(
            $"so far: cache hit {M("mnemo_cache_lookups_total{result=\"hit\"}")} miss {M("mnemo_cache_lookups_total{result=\"miss\"}")} bypass {M("mnemo_cache_lookups_total{result=\"bypass\"}")}, invalidated own_write {M("mnemo_cache_invalidations_total{reason=\"own_write\"}")} announced {M("mnemo_cache_invalidations_total{reason=\"announced\"}")} lost {M("mnemo_cache_invalidations_total{reason=\"subscription_lost\"}")}, reads {M("mnemo_redis_round_trips_total{op=\"read\"}")}");
    }

    private static readonly (string Scenario, string? Mode, string? Expect)[] Scenarios =
    [
        ("direct", null, null),
        ("proxy-off", "off", "off"),
        ("proxy-memory", "inject", "hit"),
    ];

    /// <summary>
    /// The delay mode's scenarios: proxy-strict is proxy-memory with X-Mnemo-Consistency: strict, its turn written
    /// before the end of its response, so the write's round trip shows in the last byte and not in the first;
    /// proxy-cold is proxy-memory on a new session each request (never cached: its read goes to Redis).
    /// </summary>
    private static readonly (string Scenario, string? Mode, string? Expect, string? Consistency)[] DelayScenarios =
    [
        ("proxy-off", "off", "off", null),
        ("proxy-memory", "inject", "hit", null),
        ("proxy-strict", "inject", "hit", "strict"),
        ("proxy-cold", "inject", "empty", null),
    ];

    private static async Task<Row> MeasureAsync(string scenario, RequestFactory factory, int concurrency, ProxyInstance? proxy, HttpClient client, BenchOptions options)
    {
        var label = $"{scenario} {(factory.Stream ? "stream" : "json")} c={concurrency}";
        Step(label);
        await LoadGenerator.ClosedAsync(label, client, factory, concurrency, options.Warmup);
        var (allocated, cpu) = proxy is null ? (0, 0) : (await proxy.AllocatedBytesAsync(), proxy.CpuSeconds);
        var run = await LoadGenerator.ClosedAsync(label, client, factory, concurrency, options.Duration);
        return await RowAsync(scenario, factory, run, proxy, allocated, cpu);
    }

    /// <summary>
    /// The scenarios in turn (direct, proxy-off, proxy-memory, and with --closed memory through a proxy with the cache
    /// off), several rounds of a slice each, samples pooled per scenario: a machine whose speed drifts during the run
    /// (a shared 2-core VM) then drifts under all of them alike. CPU and allocations come from the scenario's proxy.
    /// </summary>
    private static async Task<Row[]> MeasureInterleavedAsync(List<(string Scenario, RequestFactory Factory, ProxyInstance? Proxy)> scenarios, int concurrency, HttpClient client, BenchOptions options)
    {
        var body = scenarios[0].Factory.Stream ? "stream" : "json";
        Step($"{body} c={concurrency}: {string.Join(", ", scenarios.Select(s => s.Scenario))} interleaved, {options.Rounds} rounds");
        foreach (var (_, factory, _) in scenarios)
        {
            await LoadGenerator.ClosedAsync("warm-up", client, factory, concurrency, options.Warmup / scenarios.Count);
        }

        var slice = options.Duration / options.Rounds;
        var runs = new List<RunResult>[scenarios.Count];
        var allocated = new double[scenarios.Count];
        var cpu = new double[scenarios.Count];
        for (var round = 0; round < options.Rounds; round++)
        {
            for (var i = 0; i < scenarios.Count; i++)
            {
                var (scenario, factory, proxy) = scenarios[i];
                var (allocatedBefore, cpuBefore) = proxy is null ? (0, 0) : (await proxy.AllocatedBytesAsync(), proxy.CpuSeconds);
                (runs[i] ??= []).Add(await LoadGenerator.ClosedAsync(scenario, client, factory, concurrency, slice));
                if (proxy is not null)
                {
                    allocated[i] += await proxy.AllocatedBytesAsync() - allocatedBefore;
                    cpu[i] += proxy.CpuSeconds - cpuBefore;
                }
            }
        }

        var rows = new Row[scenarios.Count];
        for (var i = 0; i < scenarios.Count; i++)
        {
            var (scenario, factory, proxy) = scenarios[i];
            var run = RunResult.Merge(scenario, concurrency, runs[i]);
            rows[i] = new Row(scenario, factory.Stream, concurrency, 0, run.Requests, run.Errors, run.Throughput,
                run.P50, run.P99, run.TtfbP50, run.TtfbP99,
                proxy is not null && run.Requests > 0 ? allocated[i] / run.Requests : null,
                proxy is not null && run.Requests > 0 ? cpu[i] * 1e6 / run.Requests : null,
                proxy?.RssMb);
        }

        return rows;
    }

    /// <summary>
    /// Allocations per request over a fixed number of sequential requests. Reading the proxy's counter renders its
    /// /metrics, and that rendering is allocated after the reading: it is measured first and taken out.
    /// </summary>
    private static async Task<Row> MeasureAllocationsAsync(string scenario, RequestFactory factory, int requests, ProxyInstance proxy, HttpClient client)
    {
        Step($"{scenario} stream, {factory.Tokens} chunks: allocations over {requests} requests");
        for (var i = 0; i < 5; i++)
        {
            await LoadGenerator.SendAsync(client, factory.Create(0, -i - 1), factory);
        }

        var first = await proxy.AllocatedBytesAsync();
        var second = await proxy.AllocatedBytesAsync();
        var scrape = second - first;
        var samples = new List<Sample>(requests);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        for (var i = 0; i < requests; i++)
        {
            samples.Add(await LoadGenerator.SendAsync(client, factory.Create(0, i), factory));
        }

        var run = RunResult.From(scenario, 1, samples, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        var allocated = (await proxy.AllocatedBytesAsync() - second - scrape) / requests;
        return new Row(scenario, true, 1, 0, run.Requests, run.Errors, run.Throughput, run.P50, run.P99, run.TtfbP50, run.TtfbP99, allocated, null, proxy.RssMb);
    }

    private static async Task<Row> MeasureOpenAsync(string scenario, RequestFactory factory, double rate, ProxyInstance? proxy, HttpClient client, BenchOptions options)
    {
        var label = $"{scenario} {(factory.Stream ? "stream" : "json")} open loop {rate} req/s";
        Step(label);
        await LoadGenerator.OpenAsync(label, client, factory, rate, options.Warmup);
        var (allocated, cpu) = proxy is null ? (0, 0) : (await proxy.AllocatedBytesAsync(), proxy.CpuSeconds);
        var run = await LoadGenerator.OpenAsync(label, client, factory, rate, options.Duration);
        return await RowAsync(scenario, factory, run, proxy, allocated, cpu);
    }

    private static async Task<Row> RowAsync(string scenario, RequestFactory factory, RunResult run, ProxyInstance? proxy, double allocatedBefore, double cpuBefore)
    {
        double? allocated = null, cpu = null, rss = null;
        if (proxy is not null && run.Requests > 0)
        {
            allocated = (await proxy.AllocatedBytesAsync() - allocatedBefore) / run.Requests;
            cpu = (proxy.CpuSeconds - cpuBefore) * 1e6 / run.Requests;
            rss = proxy.RssMb;
        }

        return new Row(scenario, factory.Stream, run.Concurrency, run.Rate, run.Requests, run.Errors, run.Throughput,
            run.P50, run.P99, run.TtfbP50, run.TtfbP99, allocated, cpu, rss);
    }

    /// <remarks>
    /// Cold: each request opens a new session, so its read goes to Redis. Warm: sessions this proxy has read and written
    /// before (its cache holds them), so a request should read nothing and write its turn.
    /// </remarks>
    private static async Task CountRoundTripsAsync(Report report, RedisServer redis, Uri upstreamUrl, HttpClient client, BenchOptions options)
    {
        Step("counting Redis round trips on the wire (relay, no delay): cold sessions, then warm ones");
        await using var relay = RedisRelay.Start(redis);
        using var proxy = await ProxyInstance.StartAsync(upstreamUrl, relay.ConnectionString);
        await proxy.WaitForCacheAsync();
        var append = Sha1(RedisScripts.Append);
        var requests = options.CountedRequests;

        var cold = await CountAsync(new RequestFactory(proxy.Url, "inject", stream: false, "cold", sessions: 1) { SessionPerRequest = true });
        report.ReadRoundTripsPerRequest = cold.Reads;
        report.WriteRoundTripsPerRequest = cold.Writes;
        report.ExpiryRefreshesPerRead = cold.Expiries;
        report.OtherRoundTrips = cold.Other;

        // Three requests per session, each written before the next: from the third on, the proxy's copy is current.
        var warm = new RequestFactory(proxy.Url, "inject", stream: false, "count", sessions: 8);
        for (var pass = 0; pass < 3; pass++)
        {
            for (var session = 0; session < 8; session++)
            {
                await SendCountedAsync(warm, session, pass);
            }

            await Task.Delay(100);
        }

        var counted = await CountAsync(warm);
        report.WarmReadRoundTripsPerRequest = counted.Reads;
        report.WarmWriteRoundTripsPerRequest = counted.Writes;
        report.OtherRoundTrips += counted.Other;
        report.CountedRequests = requests;

        async Task<(double Reads, double Writes, double Expiries, int Other)> CountAsync(RequestFactory factory)
        {
            relay.Reset();
            for (var i = 0; i < requests; i++)
            {
                await SendCountedAsync(factory, i, i + 3);
            }

            // Every turn's script call seen: the writer pipelines the calls of different sessions that wait together into
            // one round trip, so the calls are counted, not the round trips that carry them.
            await WaitAsync(() => relay.RoundTrips.Sum(t => t.Commands.Zip(t.FirstArguments).Count(c => c is ("EVALSHA", var sha) && sha == append)) >= requests, TimeSpan.FromSeconds(30));
            await Task.Delay(200);
            // What a request waits on: one LRANGE to read (its HMGET and LLEN in the same batch), one EVALSHA of the
            // append script to write. A read's two EXPIREs ride in the same batch, fire-and-forget; SE.Redis may flush
            // them apart from the LRANGE when another caller's command interleaves, which costs no wait, so they are
            // checked by count rather than by exchange. The cache's probes (PUBLISH) are on a timer, not per request.
            var commands = relay.RoundTrips.SelectMany(t => t.Commands.Zip(t.FirstArguments)).Where(c => c.First is not ("PING" or "ECHO" or "PUBLISH" or "SUBSCRIBE")).ToList();
            var reads = commands.Count(c => c.First == "LRANGE");
            return (
                (double)reads / requests,
                (double)commands.Count(c => c is ("EVALSHA", var sha) && sha == append) / requests,
                reads == 0 ? 0 : (double)commands.Count(c => c.First is "EXPIRE" or "PEXPIRE") / reads,
                commands.Count(c => c.First is not ("LRANGE" or "HMGET" or "LLEN" or "EXPIRE" or "PEXPIRE") && !(c.First == "EVALSHA" && c.Second == append)));
        }

        async Task SendCountedAsync(RequestFactory factory, int worker, int sequence)
        {
            var sample = await LoadGenerator.SendAsync(client, factory.Create(worker, sequence), factory);
            if (!sample.Ok)
            {
                throw new InvalidOperationException("a counted request failed");
            }
        }
    }

    /// <summary>Redis made 10 ms away (5 ms each way) so each round trip shows in the latency.</summary>
    private static async Task DelayModeAsync(Report report, RedisServer redis, Uri upstreamUrl, HttpClient client, BenchOptions options)
    {
        Step($"delay mode: {s_delayEachWay.TotalMilliseconds} ms each way in front of Redis");
        await using var relay = RedisRelay.Start(redis);
        using var proxy = await ProxyInstance.StartAsync(upstreamUrl, relay.ConnectionString);
        await proxy.WaitForCacheAsync();
        relay.Delay = s_delayEachWay;
        await SeedAsync(client, proxy.Url, "delay", 1);
        report.DelayRttMs = await RedisRoundTripAsync(relay.ConnectionString);

        var pause = TimeSpan.FromMilliseconds(30);
        foreach (var (name, stream, upload) in new[] { ("json", false, TimeSpan.Zero), ("stream", true, TimeSpan.Zero), ("json, 30 ms upload", false, pause) })
        {
            foreach (var (scenario, mode, expect, consistency) in DelayScenarios)
            {
                if (consistency is not null && upload > TimeSpan.Zero)
                {
                    // Strict's write is at the end of the response; a slow upload moves only the start.
                    continue;
                }

                var factory = new RequestFactory(proxy.Url, mode, stream, scenario == "proxy-cold" ? "delay-cold" : "delay", sessions: 1)
                {
                    UploadPause = upload, ExpectMemory = expect, Consistency = consistency, SessionPerRequest = scenario == "proxy-cold",
                };
                var before = await proxy.StagesAsync();
                var row = await MeasureAsync(scenario, factory, 1, proxy, client, options with { Duration = options.DelayDuration });
                var after = await proxy.StagesAsync();
                double Mean(string stage) => after.TryGetValue(stage, out var a) && a.Count > before.GetValueOrDefault(stage).Count
                    ? 1000 * (a.Sum - before.GetValueOrDefault(stage).Sum) / (a.Count - before.GetValueOrDefault(stage).Count)
                    : double.NaN;
                // Strict rows in a list of their own: Delay keeps the rows (and count) it always had.
                (consistency is null ? report.Delay : report.DelayStrict).Add(
                    row with { Variant = name, BodyReadMs = Mean("body_read"), HistoryReadMs = Mean("history_read"), WriteBackMs = Mean("writeback") });
            }
        }
    }

    /// <summary>Many long, slow streams held at once: what memory a sidecar needs for them.</summary>
    private static async Task SlowStreamsAsync(Report report, RedisServer redis, Uri upstreamUrl, BenchOptions options)
    {
        var streams = options.Streams;
        Step($"{streams} concurrent slow streams ({options.SlowStreamTokens} tokens, {options.SlowStreamDelayMs} ms apart)");
        using var proxy = await ProxyInstance.StartAsync(upstreamUrl, redis.ConnectionString);
        using var client = LoadGenerator.CreateClient();
        report.StreamsBaselineRssMb = proxy.RssMb;
        var factory = new RequestFactory(proxy.Url, "inject", stream: true, "slow", sessions: streams) { Tokens = options.SlowStreamTokens, TokenDelayMs = options.SlowStreamDelayMs };
        var started = Stopwatch.GetTimestamp();
        var all = Enumerable.Range(0, streams).Select(i => Task.Run(() => LoadGenerator.SendAsync(client, factory.Create(i, 0), factory))).ToArray();
        var peakSampled = 0.0;
        while (!Task.WhenAll(all).IsCompleted)
        {
            peakSampled = Math.Max(peakSampled, proxy.RssMb);
            await Task.Delay(100);
        }

        var samples = await Task.WhenAll(all);
        report.Streams = streams;
        report.StreamsCompleted = samples.Count(s => s.Ok);
        report.StreamsSeconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        report.StreamsPeakRssMb = Math.Max(peakSampled, proxy.PeakRssMb);
    }

    private static async Task SeedAsync(HttpClient client, Uri proxy, string prefix, int sessions)
    {
        for (var turn = 0; turn < HistoryTurns; turn++)
        {
            await Task.WhenAll(Enumerable.Range(0, sessions).Select(async session =>
            {
                var factory = new RequestFactory(proxy, "inject", stream: false, prefix, sessions);
                var sample = await LoadGenerator.SendAsync(client, factory.Create(session, turn), factory);
                if (!sample.Ok)
                {
                    throw new InvalidOperationException("seeding failed");
                }
            }));
        }

        // The last turns are written in the background; wait for them like a later request would not have to.
        await Task.Delay(500);
    }

    private static async Task<int> HistoryBytesAsync(RedisServer redis, string session)
    {
        var tenant = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(RequestFactory.ApiKey)).AsSpan(0, 16));
        var turns = await redis.Db.ListRangeAsync($"mnemo:v1:{{{tenant}:{session}}}:turns", -HistoryTurns, -1);
        return turns.Sum(t => TurnCodec.TryRead((byte[])t!, out var view) ? view.Messages.Length + 1 : 0);
    }

    private static Task<double> RedisRoundTripAsync(RedisServer redis) => RedisRoundTripAsync(redis.ConnectionString);

    private static async Task<double> RedisRoundTripAsync(string connection)
    {
        await using var multiplexer = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(connection);
        var database = multiplexer.GetDatabase();
        var times = new List<double>();
        for (var i = 0; i < 200; i++)
        {
            times.Add((await database.PingAsync()).TotalMilliseconds);
        }

        return RunResult.Percentile([.. times.Order()], 0.5);
    }

    private static MnemoProcess StartUpstream(int tokens, out Uri url)
    {
        var port = Ports.Free();
        url = new Uri($"http://127.0.0.1:{port}");
        return MnemoProcess.Start([typeof(LoadBenchmark).Assembly.Location, "upstream", "--port", port.ToString(CultureInfo.InvariantCulture), "--tokens", tokens.ToString(CultureInfo.InvariantCulture)]);
    }

    private static async Task WaitForPortAsync(Uri url)
    {
        using var probe = new HttpClient();
        await WaitAsync(async () =>
        {
            try
            {
                await probe.GetAsync(url);
                return true;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30));
    }

    private static Task WaitAsync(Func<bool> condition, TimeSpan timeout) => WaitAsync(() => Task.FromResult(condition()), timeout);

    private static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("benchmark step timed out");
            }

            await Task.Delay(50);
        }
    }

    // Redis names a script by its SHA1: this is how the relay tells the read script from the append script.
#pragma warning disable CA5350
    private static string Sha1(string script) => Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(script)));
#pragma warning restore CA5350

    private static void Step(string text) => Console.WriteLine($"  [{DateTime.Now:HH:mm:ss}] {text}");
}

/// <summary>Command-line settings of the load benchmark.</summary>
internal sealed record BenchOptions
{
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(15);

    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(3);

    public TimeSpan DelayDuration { get; init; } = TimeSpan.FromSeconds(5);

    public int Rounds { get; init; } = 5;

    public int Tokens { get; init; } = 20;

    /// <summary>Chunks of the long stream in the allocation comparison (the short one has 20).</summary>
    public int ChunkTokens { get; init; } = 500;

    public int Streams { get; init; } = 500;

    public int SlowStreamTokens { get; init; } = 100;

    public int SlowStreamDelayMs { get; init; } = 100;

    public int CountedRequests { get; init; } = 200;

    /// <summary>Requests of the long stream in the allocation comparison (five times as many of the short one).</summary>
    public int ChunkRequests { get; init; } = 30;

    public string JsonPath { get; init; } = "artifacts/benchmark.json";

    public bool Smoke { get; init; }

    /// <summary>Only the memory-held step.</summary>
    public bool HeldOnly { get; init; }

    /// <summary>Only the closed loop (direct, proxy-off, proxy-memory interleaved), with the ratios printed.</summary>
    public bool ClosedOnly { get; init; }

    /// <summary>When set, only the open loop at this rate (req/s).</summary>
    public double OpenRate { get; init; }

    /// <summary>Seconds in all: checks that every part of the harness runs, says nothing about the numbers.</summary>
    public static BenchOptions SmokeRun { get; } = new()
    {
        Duration = TimeSpan.FromSeconds(0.3),
        Warmup = TimeSpan.FromSeconds(0.15),
        DelayDuration = TimeSpan.FromSeconds(0.3),
        Rounds = 1,
        ChunkTokens = 100,
        Streams = 20,
        SlowStreamTokens = 10,
        SlowStreamDelayMs = 20,
        CountedRequests = 20,
        ChunkRequests = 4,
        JsonPath = "artifacts/benchmark-smoke.json",
        Smoke = true,
    };

    public static BenchOptions Parse(string[] args)
    {
        var options = args.Contains("--smoke") ? SmokeRun : new BenchOptions();
        options = options with { HeldOnly = args.Contains("--held"), ClosedOnly = args.Contains("--closed") };
        for (var i = 0; i < args.Length - 1; i++)
        {
            var value = args[i + 1];
            options = args[i] switch
            {
                "--duration" => options with { Duration = TimeSpan.FromSeconds(double.Parse(value, CultureInfo.InvariantCulture)) },
                "--warmup" => options with { Warmup = TimeSpan.FromSeconds(double.Parse(value, CultureInfo.InvariantCulture)) },
                "--delay-duration" => options with { DelayDuration = TimeSpan.FromSeconds(double.Parse(value, CultureInfo.InvariantCulture)) },
                "--rounds" => options with { Rounds = int.Parse(value, CultureInfo.InvariantCulture) },
                "--tokens" => options with { Tokens = int.Parse(value, CultureInfo.InvariantCulture) },
                "--streams" => options with { Streams = int.Parse(value, CultureInfo.InvariantCulture) },
                "--json" => options with { JsonPath = value },
                "--open-rate" => options with { OpenRate = double.Parse(value, CultureInfo.InvariantCulture) },
                _ => options,
            };
        }

        return options;
    }

    public string Describe() =>
        $"closed loop: {Duration.TotalSeconds:0.#} s per scenario in {Rounds} interleaved rounds after {Warmup.TotalSeconds:0.#} s warm-up; " +
        $"open loop {Duration.TotalSeconds:0.#} s; delay mode {DelayDuration.TotalSeconds:0.#} s; {Tokens} tokens per answer; " +
        $"{Streams} slow streams of {SlowStreamTokens} tokens {SlowStreamDelayMs} ms apart";
}
