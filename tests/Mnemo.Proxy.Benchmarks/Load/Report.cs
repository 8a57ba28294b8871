using System.Globalization;
using System.Text;

namespace Mnemo.Proxy.Benchmarks.Load;

/// <summary>One measured run: latencies in milliseconds; allocation, CPU and RSS of the proxy process.</summary>
internal sealed record Row(
    string Scenario, bool Stream, int Concurrency, double Rate, int Requests, int Errors, double Throughput,
    double P50, double P99, double TtfbP50, double TtfbP99, double? AllocatedBytesPerRequest, double? CpuMicrosecondsPerRequest, double? RssMb)
{
    public string? Variant { get; init; }

    public int? Tokens { get; init; }

    /// <summary>Mean of the proxy's own stage timings over the run, in milliseconds (delay mode).</summary>
    public double? BodyReadMs { get; init; }

    public double? HistoryReadMs { get; init; }

    public double? WriteBackMs { get; init; }

    public string Body => Stream ? "stream" : "json";
}

/// <summary>Everything one benchmark run measured, the table it prints and the targets it checks.</summary>
internal sealed class Report
{
    public string Machine { get; set; } = "";

    public string Options { get; set; } = "";

    public int ChunkTokens { get; set; } = 500;

    public string SlowStreams { get; set; } = "";

    public double RedisRttMs { get; set; }

    public int HistoryBytes { get; set; }

    public List<Row> Closed { get; } = [];

    public List<Row> Open { get; } = [];

    public List<Row> Chunks { get; } = [];

    public List<Row> Delay { get; } = [];

    public double DelayRttMs { get; set; }

    /// <summary>Delay mode's proxy-strict rows (json and stream): proxy-memory with <c>X-Mnemo-Consistency: strict</c>.</summary>
    public List<Row> DelayStrict { get; } = [];

    /// <summary>What Strict adds over proxy-memory in the delay mode, per variant, in ms and in round trips of <see cref="DelayRttMs"/>.</summary>
    public List<StrictCost> Strict => [.. DelayStrict.Select(StrictCostOf)];

    /// <summary>Read round trips of a cold session's request (a new session each request).</summary>
    public double ReadRoundTripsPerRequest { get; set; }

    /// <summary>Read round trips of a warm session's request (held by the proxy's session cache): the target is 0.</summary>
    public double WarmReadRoundTripsPerRequest { get; set; }

    public double WarmWriteRoundTripsPerRequest { get; set; }

    public int Alternations { get; set; }

    public int StrictStale { get; set; }

    public int ReplicaStale { get; set; }

    /// <summary>Of the stale Replica reads: the longest time from the end of the answer whose turn it lacked to its send.</summary>
    public double ReplicaStaleMaxAgeMs { get; set; }

    public double ReplicaWriteBackMs { get; set; }

    public long InvalidationSamples { get; set; }

    public double InvalidationDelayP50Ms { get; set; }

    public double InvalidationDelayP99Ms { get; set; }

    public int HeldSessions { get; set; }

    public double HeldEntries { get; set; }

    public double HeldCacheBytes { get; set; }

    public long HeldCacheLimitBytes { get; set; }

    /// <summary>Read round trips of the second pass over the held sessions (0: every one was served from the cache).</summary>
    public double HeldSecondPassReads { get; set; }

    public double HeldRssBeforeMb { get; set; }

    public double HeldRssAfterMb { get; set; }

    /// <summary>The proxy's managed heap (GC.GetTotalMemory, dotnet_total_memory_bytes) before and after: live objects and garbage not yet collected.</summary>
    public double HeldManagedHeapBeforeMb { get; set; }

    public double HeldManagedHeapMb { get; set; }

    /// <summary>Mean bytes of one stored turn element of the held sessions.</summary>
    public double HeldElementBytes { get; set; }

    public double WriteRoundTripsPerRequest { get; set; }

    public int OtherRoundTrips { get; set; }

    /// <summary>EXPIREs sent per read: 2 means both keys' expiry was refreshed by every read.</summary>
    public double ExpiryRefreshesPerRead { get; set; }

    public int CountedRequests { get; set; }

    public double MainPeakRssMb { get; set; }

    public int Streams { get; set; }

    public int StreamsCompleted { get; set; }

    public double StreamsSeconds { get; set; }

    public double StreamsBaselineRssMb { get; set; }

    public double StreamsPeakRssMb { get; set; }

    public List<Target> Targets => BuildTargets();

    public void Print()
    {
        var text = new StringBuilder();
        text.AppendLine();
        text.AppendLine($"Machine: {Machine}");
        text.AppendLine($"Runs: {Options}. History per memory request: {HistoryBytes} bytes ({HistoryBytes / 1024.0:F1} KB, 20 turns). Loopback Redis round trip p50: {RedisRttMs:F3} ms.");
        text.AppendLine();
        text.AppendLine("Closed loop (added = this row minus direct, same body and concurrency)");
        Table(text, Closed, open: false);
        text.AppendLine();
        text.AppendLine($"Open loop, fixed rate, latency from the scheduled send time");
        Table(text, Open, open: true);
        text.AppendLine();
        text.AppendLine($"Redis round trips per memory request, counted on the wire over {CountedRequests} requests each: cold session read {ReadRoundTripsPerRequest:F2} (HMGET, LRANGE and LLEN in one batch; EXPIREs per read {ExpiryRefreshesPerRead:F2}, fire-and-forget), write {WriteRoundTripsPerRequest:F2} (EVALSHA); warm session read {WarmReadRoundTripsPerRequest:F2}, write {WarmWriteRoundTripsPerRequest:F2}; other commands {OtherRoundTrips}");
        text.AppendLine();
        text.AppendLine($"Delay mode: Redis behind a relay adding 5 ms each way (measured round trip p50 {DelayRttMs:F1} ms), concurrency 1");
        foreach (var variant in Delay.Select(d => d.Variant).Distinct())
        {
            var off = Delay.Single(d => d.Variant == variant && d.Scenario == "proxy-off");
            var memory = Delay.Single(d => d.Variant == variant && d.Scenario == "proxy-memory");
            var metric = variant == "stream" ? "TTFB" : "latency";
            var (o, m) = variant == "stream" ? (off.TtfbP50, memory.TtfbP50) : (off.P50, memory.P50);
            text.AppendLine(Invariant($"  {variant,-20} p50 {metric}: proxy-off {o,7:F2} ms, proxy-memory {m,7:F2} ms, memory adds {m - o,6:F2} ms = {(m - o) / DelayRttMs,4:F2} round trips"));
            text.AppendLine(Invariant($"  {"",-20} proxy-memory stage means: body_read {memory.BodyReadMs,6:F2} ms, history_read {memory.HistoryReadMs,6:F2} ms (started before the body), writeback {memory.WriteBackMs,6:F2} ms (after the response)"));
            if (Delay.SingleOrDefault(d => d.Variant == variant && d.Scenario == "proxy-cold") is { } cold)
            {
                var c = variant == "stream" ? cold.TtfbP50 : cold.P50;
                text.AppendLine(Invariant($"  {"",-20} proxy-cold (a new session each request) {c,7:F2} ms: a cold session adds {c - o,6:F2} ms = {(c - o) / DelayRttMs,4:F2} round trips"));
            }
        }

        if (DelayStrict.Count > 0)
        {
            text.AppendLine("  Strict consistency (X-Mnemo-Consistency: strict) against proxy-memory, p50, same relay:");
            foreach (var cost in Strict)
            {
                var memory = Delay.Single(d => d.Variant == cost.Variant && d.Scenario == "proxy-memory");
                var strict = DelayStrict.Single(d => d.Variant == cost.Variant);
                text.AppendLine(Invariant($"  {cost.Variant,-20} first byte: proxy-memory {memory.TtfbP50,7:F2} ms, proxy-strict {strict.TtfbP50,7:F2} ms, strict adds {cost.TtfbAddedMs,6:F2} ms = {cost.TtfbAddedRoundTrips,5:F2} round trips{(strict.Stream ? "" : " (a short JSON body is one read, held whole: its first byte is its last)")}"));
                text.AppendLine(Invariant($"  {"",-20} last byte:  proxy-memory {memory.P50,7:F2} ms, proxy-strict {strict.P50,7:F2} ms, strict adds {cost.LatencyAddedMs,6:F2} ms = {cost.LatencyAddedRoundTrips,5:F2} round trips"));
                text.AppendLine(Invariant($"  {"",-20} proxy-strict writeback mean {cost.WriteBackMs,6:F2} ms = {cost.WriteBackRoundTrips,4:F2} round trips (before the response ends)"));
            }
        }

        text.AppendLine();
        text.AppendLine(Invariant($"Two replicas on one Redis alternating on one session, {Alternations} requests each way: Strict {StrictStale} stale; Replica {ReplicaStale} stale (longest {ReplicaStaleMaxAgeMs:F2} ms after the answer it lacked ended; write-back mean {ReplicaWriteBackMs:F2} ms)"));
        text.AppendLine(Invariant($"  invalidation delay (change in Redis to drop on a replica), {InvalidationSamples} announcements: p50 {InvalidationDelayP50Ms:F3} ms, p99 {InvalidationDelayP99Ms:F3} ms"));
        text.AppendLine(Invariant($"Memory held: {HeldSessions} warm sessions of 20 turns: {HeldEntries:F0} cached, {HeldCacheBytes / 1048576:F1} MiB of a {HeldCacheLimitBytes / 1048576:F0} MiB cache; second pass read Redis {HeldSecondPassReads:F0} times; stored elements {HeldElementBytes:F0} B each; proxy RSS {HeldRssBeforeMb:F0} MB before, {HeldRssAfterMb:F0} MB after; managed heap {HeldManagedHeapBeforeMb:F0} MB before, {HeldManagedHeapMb:F0} MB after"));
        text.AppendLine();
        text.AppendLine($"Allocations against stream length (concurrency 1, streamed answer of 20 vs {ChunkTokens} chunks, 1 ms apart)");
        foreach (var scenario in Chunks.Select(c => c.Scenario).Distinct())
        {
            var small = Chunks.Single(c => c.Scenario == scenario && c.Tokens == 20);
            var large = Chunks.Single(c => c.Scenario == scenario && c.Tokens == ChunkTokens);
            text.AppendLine(Invariant($"  {scenario,-13} {small.AllocatedBytesPerRequest / 1024,7:F1} KB/request at 20 chunks, {large.AllocatedBytesPerRequest / 1024,7:F1} KB at {ChunkTokens}: {PerChunk(scenario),6:F1} B per extra chunk"));
        }

        text.AppendLine();
        text.AppendLine(Invariant($"{Streams} concurrent slow streams (memory on, {SlowStreams}): {StreamsCompleted} completed in {StreamsSeconds:F1} s; proxy RSS {StreamsBaselineRssMb:F0} MB idle, {StreamsPeakRssMb:F0} MB peak"));
        text.AppendLine(Invariant($"Proxy peak RSS over the closed and open loop runs: {MainPeakRssMb:F0} MB"));
        text.AppendLine();
        text.AppendLine("Targets");
        foreach (var target in Targets)
        {
            text.AppendLine($"  [{(target.Met ? "met" : "MISSED")}] {target.Name}: {target.Detail}");
        }

        Console.Write(text.ToString());
    }

    private double PerChunk(string scenario)
    {
        var small = Chunks.Single(c => c.Scenario == scenario && c.Tokens == 20);
        var large = Chunks.Single(c => c.Scenario == scenario && c.Tokens == ChunkTokens);
        return ((large.AllocatedBytesPerRequest ?? 0) - (small.AllocatedBytesPerRequest ?? 0)) / (ChunkTokens - 20);
    }

    private List<Target> BuildTargets()
    {
        var targets = new List<Target>();
        if (Closed.Count == 0)
        {
            return targets;
        }

        foreach (var stream in new[] { false, true })
        {
            var body = stream ? "stream" : "json";
            var (direct, off, memory) = Three(Closed, stream, 1);
            double offAdded = off.P50 - direct.P50, memoryAdded = memory.P50 - direct.P50;
            targets.Add(new Target($"proxy-memory adds at most 1.3x what proxy-off adds, p50, c=1, {body}", memoryAdded <= 1.3 * offAdded,
                Invariant($"memory adds {memoryAdded:F3} ms, off adds {offAdded:F3} ms: {memoryAdded / offAdded:F2}x")));

            var (_, off32, memory32) = Three(Closed, stream, 32);
            targets.Add(new Target($"proxy-memory throughput at least 75% of proxy-off, c=32, {body}", memory32.Throughput >= 0.75 * off32.Throughput,
                Invariant($"{memory32.Throughput:F0} vs {off32.Throughput:F0} req/s: {memory32.Throughput / off32.Throughput:P0}")));
        }

        foreach (var concurrency in new[] { 1, 32 })
        {
            var (direct, off, memory) = Three(Closed, stream: true, concurrency);
            double offAdded = off.TtfbP50 - direct.TtfbP50, memoryAdded = memory.TtfbP50 - direct.TtfbP50;
            targets.Add(new Target($"added TTFB p50 on streams at most proxy-off's plus one Redis round trip, c={concurrency}", memoryAdded <= offAdded + RedisRttMs,
                Invariant($"memory adds {memoryAdded:F3} ms, off adds {offAdded:F3} ms, round trip {RedisRttMs:F3} ms")));
        }

        targets.Add(new Target("a cold session's request: exactly 1.0 read and 1.0 write round trip",
            ReadRoundTripsPerRequest == 1.0 && WriteRoundTripsPerRequest == 1.0 && OtherRoundTrips == 0 && ExpiryRefreshesPerRead == 2.0,
            Invariant($"read {ReadRoundTripsPerRequest:F2} (with {ExpiryRefreshesPerRead:F2} fire-and-forget EXPIREs each), write {WriteRoundTripsPerRequest:F2}, other commands {OtherRoundTrips}")));
        targets.Add(new Target("a warm session's request: 0 read round trips before forwarding, 1 write after",
            WarmReadRoundTripsPerRequest == 0 && WarmWriteRoundTripsPerRequest == 1.0,
            Invariant($"read {WarmReadRoundTripsPerRequest:F2}, write {WarmWriteRoundTripsPerRequest:F2}")));

        if (Delay.Any(d => d.Scenario == "proxy-cold" && d.Variant == "json"))
        {
            var off = Delay.Single(d => d.Variant == "json" && d.Scenario == "proxy-off");
            var warm = Delay.Single(d => d.Variant == "json" && d.Scenario == "proxy-memory");
            var cold = Delay.Single(d => d.Variant == "json" && d.Scenario == "proxy-cold");
            double warmAdds = (warm.P50 - off.P50) / DelayRttMs, coldAdds = (cold.P50 - off.P50) / DelayRttMs;
            targets.Add(new Target("delay mode: a warm memory request adds under 0.1 round trip", warmAdds < 0.1, Invariant($"{warmAdds:F2} round trips")));
            targets.Add(new Target("delay mode: a cold memory request adds one round trip (0.9 to 1.1)", coldAdds is >= 0.9 and <= 1.1, Invariant($"{coldAdds:F2} round trips")));
        }

        targets.Add(new Target($"two replicas alternating, Strict: no stale window in {Alternations} requests", StrictStale == 0, Invariant($"{StrictStale} stale")));
        var bound = InvalidationDelayP99Ms + ReplicaWriteBackMs;
        targets.Add(new Target("two replicas alternating, Replica: every stale read within the write-back plus the invalidation delay p99 of the answer it lacked",
            ReplicaStale == 0 || ReplicaStaleMaxAgeMs <= bound,
            Invariant($"{ReplicaStale} stale, the oldest {ReplicaStaleMaxAgeMs:F2} ms after its answer; write-back {ReplicaWriteBackMs:F2} ms + delay p99 {InvalidationDelayP99Ms:F3} ms = {bound:F2} ms")));
        targets.Add(new Target($"{HeldSessions} warm sessions of 20 turns held within the cache size",
            HeldEntries >= HeldSessions && HeldCacheBytes <= HeldCacheLimitBytes && HeldSecondPassReads == 0,
            Invariant($"{HeldEntries:F0} held, {HeldCacheBytes / 1048576:F1} of {HeldCacheLimitBytes / 1048576:F0} MiB, {HeldSecondPassReads:F0} reads on the second pass, RSS {HeldRssAfterMb:F0} MB")));

        if (Chunks.Count == 4)
        {
            var tee = PerChunk("proxy-memory") - PerChunk("proxy-off");
            targets.Add(new Target("allocations per request do not grow with the number of chunks (the tee copies no stream)", tee < 32,
                Invariant($"memory allocates {tee:F1} B more than proxy-off per extra chunk; a chunk is ~190 B on the wire and adds 5 B of answer text")));
        }

        targets.Add(new Target($"{Streams} concurrent slow streams held with peak RSS under 200 MB", StreamsCompleted == Streams && StreamsPeakRssMb < 200,
            Invariant($"{StreamsCompleted}/{Streams} completed, peak RSS {StreamsPeakRssMb:F0} MB")));
        return targets;
    }

    private StrictCost StrictCostOf(Row strict)
    {
        var memory = Delay.Single(d => d.Variant == strict.Variant && d.Scenario == "proxy-memory");
        double ttfb = strict.TtfbP50 - memory.TtfbP50, latency = strict.P50 - memory.P50;
        return new StrictCost(strict.Variant ?? "", ttfb, ttfb / DelayRttMs, latency, latency / DelayRttMs, strict.WriteBackMs ?? double.NaN, (strict.WriteBackMs ?? double.NaN) / DelayRttMs);
    }

    private static (Row Direct, Row Off, Row Memory) Three(List<Row> rows, bool stream, int concurrency)
    {
        Row Pick(string scenario) => rows.Single(r => r.Scenario == scenario && r.Stream == stream && r.Concurrency == concurrency);
        return (Pick("direct"), Pick("proxy-off"), Pick("proxy-memory"));
    }

    private static void Table(StringBuilder text, List<Row> rows, bool open)
    {
        text.AppendLine(open
            ? "  scenario      body    rate/s  p50 ms   p99 ms  +p50 ms  +p99 ms  ttfb p50  +ttfb  errors  alloc KB/req  CPU us/req  RSS MB"
            : "  scenario      body    conc  p50 ms   p99 ms  +p50 ms  +p99 ms  ttfb p50  +ttfb    req/s  errors  alloc KB/req  CPU us/req  RSS MB");
        foreach (var row in rows)
        {
            var direct = rows.First(r => r.Scenario == "direct" && r.Stream == row.Stream && r.Concurrency == row.Concurrency && r.Rate == row.Rate);
            var added = row.Scenario == "direct" ? "       -        -" : Invariant($"{row.P50 - direct.P50,8:F3} {row.P99 - direct.P99,8:F3}");
            var ttfb = row.Stream ? Invariant($"{row.TtfbP50,8:F3} {(row.Scenario == "direct" ? "     -" : (row.TtfbP50 - direct.TtfbP50).ToString("F3", CultureInfo.InvariantCulture)),6}") : "       -      -";
            var proxy = row.AllocatedBytesPerRequest is null ? "             -           -       -"
                : Invariant($"{row.AllocatedBytesPerRequest / 1024,13:F1} {row.CpuMicrosecondsPerRequest,11:F0} {row.RssMb,7:F0}");
            text.AppendLine(open
                ? Invariant($"  {row.Scenario,-13} {row.Body,-6} {row.Rate,7:F0} {row.P50,7:F3} {row.P99,8:F3} {added} {ttfb} {row.Errors,7} {proxy}")
                : Invariant($"  {row.Scenario,-13} {row.Body,-6} {row.Concurrency,5} {row.P50,7:F3} {row.P99,8:F3} {added} {ttfb} {row.Throughput,8:F0} {row.Errors,7} {proxy}"));
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Strict's cost over proxy-memory in one delay-mode variant: p50 differences in ms and in Redis round trips.</summary>
internal sealed record StrictCost(string Variant, double TtfbAddedMs, double TtfbAddedRoundTrips, double LatencyAddedMs, double LatencyAddedRoundTrips, double WriteBackMs, double WriteBackRoundTrips);

/// <summary>One of the issue's performance targets and whether this run met it.</summary>
internal sealed record Target(string Name, bool Met, string Detail);
