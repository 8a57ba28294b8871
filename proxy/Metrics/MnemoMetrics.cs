using Prometheus;

namespace Mnemo.Proxy.Metrics;

/// <summary>Every Prometheus metric Mnemo exposes, in its own registry; label values come only from the fixed enums below.</summary>
internal sealed class MnemoMetrics
{
    private static readonly double[] s_stageBuckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

    private static readonly double[] s_overheadBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    private static readonly string[] s_stages =
        ["body_read", "history_read", "context_build", "upstream_headers", "upstream_first_byte", "upstream_total", "writeback", "summary"];

    private static readonly string[] s_memory = ["hit", "empty", "off", "degraded"];
    private static readonly string[] s_outcomes = ["completed", "client_aborted", "upstream_error", "rejected"];
    private static readonly string[] s_writeBack = ["written", "duplicate", "retried", "dropped", "erased"];
    private static readonly string[] s_notStored = ["too_large", "no_input", "invalid"];
    private static readonly string[] s_ops = ["read", "write"];
    private static readonly string[] s_dropKinds = ["thinking", "reasoning", "image", "other"];
    private static readonly string[] s_summary = ["written", "superseded", "failed"];
    private static readonly string[] s_cacheLookups = ["hit", "miss", "bypass"];
    private static readonly string[] s_cacheInvalidations = ["announced", "own_write", "erased", "subscription_lost"];
    private static readonly string[] s_fixes = ["dangling_call", "orphan_result", "duplicate_id", "provider_reference", "unreadable"];

    private static readonly double[] s_delayBuckets =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

    private readonly Histogram _stage;
    private readonly Histogram _overhead;
    private readonly Counter _requests;
    private readonly Counter _tokens;
    private readonly Histogram.Child?[] _stageChildren = new Histogram.Child?[s_stages.Length * DialectLabels.Count];
    private readonly Histogram.Child?[] _overheadChildren = new Histogram.Child?[DialectLabels.Count];
    private readonly Counter.Child?[] _requestChildren = new Counter.Child?[DialectLabels.Count * s_memory.Length * s_outcomes.Length];
    private readonly Counter.Child?[] _tokenChildren = new Counter.Child?[DialectLabels.Count * 2];
    private readonly Counter.Child[] _writeBackChildren;
    private readonly Counter.Child[] _roundTripChildren;
    private readonly Counter.Child[] _summaryChildren;
    private readonly Gauge _queueDepth;
    private readonly Counter.Child[] _notStoredChildren;
    private readonly Counter.Child[] _conversionCacheChildren;
    private readonly Gauge _queueBytes;
    private readonly Counter _conversionDropped;
    private readonly Counter.Child[] _cacheLookupChildren;
    private readonly Counter.Child[] _cacheInvalidationChildren;
    private readonly Histogram _cacheDelay;
    private readonly Gauge _cacheUp;
    private readonly Gauge _cacheEntries;
    private readonly Gauge _cacheBytes;
    private readonly Counter.Child?[] _droppedChildren = new Counter.Child?[DialectLabels.Count * DialectLabels.Count * s_dropKinds.Length];
    private readonly Counter _contextFixes;
    private readonly Counter.Child?[] _contextFixChildren = new Counter.Child?[DialectLabels.Count * s_fixes.Length];

    public MnemoMetrics()
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var factory = Prometheus.Metrics.WithCustomRegistry(Registry);

        _stage = factory.CreateHistogram(
            "mnemo_stage_duration_seconds",
            "Duration of each stage of a proxied request, and of the background write-back.",
            new HistogramConfiguration { LabelNames = ["stage", "dialect"], Buckets = s_stageBuckets });
        _overhead = factory.CreateHistogram(
            "mnemo_overhead_seconds",
            "Time Mnemo adds to a request: total time minus time waiting on the upstream.",
            new HistogramConfiguration { LabelNames = ["dialect"], Buckets = s_overheadBuckets });
        _requests = factory.CreateCounter(
            "mnemo_requests_total",
            "Proxied requests by dialect, memory state and outcome.",
            new CounterConfiguration { LabelNames = ["dialect", "memory", "outcome"] });
        _tokens = factory.CreateCounter(
            "mnemo_tokens_total",
            "Tokens reported by the upstream's usage, by direction.",
            new CounterConfiguration { LabelNames = ["dialect", "direction"] });
        _queueDepth = factory.CreateGauge(
            "mnemo_writeback_queue_depth",
            "Turns waiting to be written to the store.");
        _queueBytes = factory.CreateGauge(
            "mnemo_writeback_queue_bytes",
            "Bytes of the turns waiting to be written to the store.");
        var writeBack = factory.CreateCounter(
            "mnemo_writeback_total",
            "Write-back attempts by outcome: written, duplicate (a retried write already stored), retried, dropped, erased (its session was erased after it was answered).",
            new CounterConfiguration { LabelNames = ["outcome"] });
        var roundTrips = factory.CreateCounter(
            "mnemo_redis_round_trips_total",
            "Round trips to Redis, by operation.",
            new CounterConfiguration { LabelNames = ["op"] });

        var notStored = factory.CreateCounter(
            "mnemo_turns_not_stored_total",
            "Answered exchanges whose turn was not stored, by reason: too_large (over Mnemo:Memory:MaxTurnBytes), no_input (no new non-system message), invalid (the answer was not valid UTF-8 JSON).",
            new CounterConfiguration { LabelNames = ["reason"] });
        _notStoredChildren = Array.ConvertAll(s_notStored, label => notStored.WithLabels(label));

        var conversionCache = factory.CreateCounter(
            "mnemo_conversion_cache_total",
            "Cross-dialect conversions of stored turns by result: hit (served from the in-memory cache) or miss (converted and cached). Hit ratio: hit / (hit + miss).",
            new CounterConfiguration { LabelNames = ["result"] });
        _conversionCacheChildren = [conversionCache.WithLabels("hit"), conversionCache.WithLabels("miss")];

        _conversionDropped = factory.CreateCounter(
            "mnemo_conversion_dropped_total",
            "Parts of stored turns that a request in another dialect cannot carry and that were left out of its history.",
            new CounterConfiguration { LabelNames = ["from", "to", "kind"] });

        _contextFixes = factory.CreateCounter(
            "mnemo_context_fixes_total",
            "What the context build mended so that the forwarded conversation keeps its API's pairing rules, by request dialect and reason: dangling_call (a tool call without its result, closed with a result saying it has none), orphan_result (a tool result without its call, left out), duplicate_id (a call or item id already in the request, left out), provider_reference (a stored reference to an item only the provider holds, left out), unreadable (a stored run its own dialect cannot read, left out).",
            new CounterConfiguration { LabelNames = ["dialect", "reason"] });

        var summary = factory.CreateCounter(
            "mnemo_summaries_total",
            "Rolling summary runs by outcome: written, superseded (another summary was stored meanwhile), failed (the summarizer call or its store write failed; the window serves without it).",
            new CounterConfiguration { LabelNames = ["outcome"] });
        _summaryChildren = Array.ConvertAll(s_summary, label => summary.WithLabels(label));

        var lookups = factory.CreateCounter(
            "mnemo_cache_lookups_total",
            "History reads by where they were served from: hit (the session cache, no Redis round trip), miss (Redis, then cached), bypass (Redis: Strict consistency, or the cache is off until its invalidation subscription is back).",
            new CounterConfiguration { LabelNames = ["result"] });
        _cacheLookupChildren = Array.ConvertAll(s_cacheLookups, label => lookups.WithLabels(label));
        var invalidations = factory.CreateCounter(
            "mnemo_cache_invalidations_total",
            "Cached sessions dropped, by reason: announced (another replica changed the session), own_write (this replica's write could not be applied in place), erased (an administrator erased it), subscription_lost (every entry, when the invalidation subscription dropped).",
            new CounterConfiguration { LabelNames = ["reason"] });
        _cacheInvalidationChildren = Array.ConvertAll(s_cacheInvalidations, label => invalidations.WithLabels(label));
        _cacheDelay = factory.CreateHistogram(
            "mnemo_cache_invalidation_delay_seconds",
            "From a session's change in Redis (Redis's clock) to this replica having applied its announcement (this replica's clock): the window in which Replica consistency can serve a stale history.",
            new HistogramConfiguration { Buckets = s_delayBuckets });
        _cacheUp = factory.CreateGauge(
            "mnemo_cache_subscription_up",
            "1 while the session cache's invalidation subscription is confirmed (the cache serves), 0 while it is down or not yet confirmed (every read goes to Redis).");
        _cacheEntries = factory.CreateGauge(
            "mnemo_cache_entries",
            "Sessions held in the session cache.");
        _cacheBytes = factory.CreateGauge(
            "mnemo_cache_bytes",
            "Estimated bytes of the sessions held in the session cache (what Mnemo:Cache:SizeLimit bounds).");

        // Created up front so alerts on rate() see a zero series before the first event.
        _writeBackChildren = Array.ConvertAll(s_writeBack, label => writeBack.WithLabels(label));
        _roundTripChildren = Array.ConvertAll(s_ops, label => roundTrips.WithLabels(label));

        DotNetStats.Register(Registry);
        // Read at scrape time only: what a request costs in allocations is allocated bytes over requests.
        var allocated = factory.CreateCounter("dotnet_gc_allocated_bytes_total", "Bytes allocated on the managed heap since the process started.");
        Registry.AddBeforeCollectCallback(() => allocated.IncTo(GC.GetTotalAllocatedBytes()));
    }

    public CollectorRegistry Registry { get; }

    public void Stage(Stage stage, DialectId dialect, double seconds)
    {
        var index = ((int)stage * DialectLabels.Count) + (int)dialect;
        (_stageChildren[index] ??= _stage.WithLabels(s_stages[(int)stage], dialect.Label())).Observe(seconds);
    }

    public void Overhead(DialectId dialect, double seconds) =>
        (_overheadChildren[(int)dialect] ??= _overhead.WithLabels(dialect.Label())).Observe(Math.Max(0, seconds));

    public void Request(DialectId dialect, MemoryState memory, Outcome outcome)
    {
        var index = ((((int)dialect * s_memory.Length) + (int)memory) * s_outcomes.Length) + (int)outcome;
        (_requestChildren[index] ??= _requests.WithLabels(dialect.Label(), s_memory[(int)memory], s_outcomes[(int)outcome])).Inc();
    }

    public void Tokens(DialectId dialect, long input, long output)
    {
        if (input > 0)
        {
            (_tokenChildren[(int)dialect * 2] ??= _tokens.WithLabels(dialect.Label(), "input")).Inc(input);
        }

        if (output > 0)
        {
            (_tokenChildren[((int)dialect * 2) + 1] ??= _tokens.WithLabels(dialect.Label(), "output")).Inc(output);
        }
    }

    public void WriteBack(WriteBackOutcome outcome, double count = 1) => _writeBackChildren[(int)outcome].Inc(count);

    public void NotStored(NotStoredReason reason) => _notStoredChildren[(int)reason].Inc();

    /// <summary>A cross-dialect conversion found in the cache, or made (and cached).</summary>
    public void ConversionCache(bool hit) => _conversionCacheChildren[hit ? 0 : 1].Inc();

    public void Summary(SummaryOutcome outcome) => _summaryChildren[(int)outcome].Inc();

    public void CacheLookup(CacheLookup result) => _cacheLookupChildren[(int)result].Inc();

    public void CacheInvalidation(CacheInvalidation reason, double count = 1) => _cacheInvalidationChildren[(int)reason].Inc(count);

    public void CacheInvalidationDelay(double seconds) => _cacheDelay.Observe(seconds);

    public void CacheSubscription(bool up) => _cacheUp.Set(up ? 1 : 0);

    public void CacheEntries(long count, long bytes)
    {
        _cacheEntries.Set(count);
        _cacheBytes.Set(bytes);
    }

    public void RoundTrip(RedisOp op) => _roundTripChildren[(int)op].Inc();

    public void QueueDepth(int depth) => _queueDepth.Set(depth);

    public void QueueBytes(long bytes) => _queueBytes.Set(bytes);

    public void ConversionDropped(DialectId from, DialectId to, DropKind kind, int count = 1)
    {
        var index = ((((int)from * DialectLabels.Count) + (int)to) * s_dropKinds.Length) + (int)kind;
        (_droppedChildren[index] ??= _conversionDropped.WithLabels(from.Label(), to.Label(), s_dropKinds[(int)kind])).Inc(count);
    }

    /// <summary>Counts what the context build mended in a request's history (see <see cref="ContextFix"/>).</summary>
    public void ContextFixed(DialectId dialect, ContextFix reason, int count)
    {
        if (count <= 0)
        {
            return;
        }

        var index = ((int)dialect * s_fixes.Length) + (int)reason;
        (_contextFixChildren[index] ??= _contextFixes.WithLabels(dialect.Label(), s_fixes[(int)reason])).Inc(count);
    }

    public static string Label(MemoryState memory) => s_memory[(int)memory];
}

/// <summary>The <c>reason</c> label of <c>mnemo_context_fixes_total</c>.</summary>
internal enum ContextFix
{
    DanglingCall,
    OrphanResult,
    DuplicateId,
    ProviderReference,
    Unreadable,
}

internal enum Stage
{
    BodyRead,
    HistoryRead,
    ContextBuild,
    UpstreamHeaders,
    UpstreamFirstByte,
    UpstreamTotal,
    WriteBack,
    Summary,
}

/// <summary>The <c>X-Mnemo-Memory</c> header value and <c>memory</c> label.</summary>
internal enum MemoryState
{
    Hit,
    Empty,
    Off,
    Degraded,
}

internal enum Outcome
{
    Completed,
    ClientAborted,
    UpstreamError,
    Rejected,
}

internal enum WriteBackOutcome
{
    Written,
    Duplicate,
    Retried,
    Dropped,

    /// <summary>Not written: an administrator erased its session after it was answered.</summary>
    Erased,
}

/// <summary>Why an answered exchange's turn was not stored: the <c>reason</c> label.</summary>
internal enum NotStoredReason
{
    /// <summary>Larger than <c>Mnemo:Memory:MaxTurnBytes</c>.</summary>
    TooLarge,

    /// <summary>The request had no new non-system message: a turn of only an answer would be replayed to every later request.</summary>
    NoInput,

    /// <summary>The stored form would not be valid UTF-8 JSON (the upstream's answer was not).</summary>
    Invalid,
}

/// <summary>How a rolling summary run ended: the <c>outcome</c> label of <c>mnemo_summaries_total</c> (not mnemo_summary_total: promtool rejects a metric name holding the type name "_summary_").</summary>
internal enum SummaryOutcome
{
    Written,
    Superseded,
    Failed,
}

/// <summary>Where a history read was served from: the <c>result</c> label of <c>mnemo_cache_lookups_total</c>.</summary>
internal enum CacheLookup
{
    Hit,
    Miss,
    Bypass,
}

/// <summary>Why cached sessions were dropped: the <c>reason</c> label of <c>mnemo_cache_invalidations_total</c>.</summary>
internal enum CacheInvalidation
{
    Announced,
    OwnWrite,
    Erased,
    SubscriptionLost,
}

internal enum RedisOp
{
    Read,
    Write,
}

/// <summary>What a conversion between dialects may leave out: the <c>kind</c> label.</summary>
internal enum DropKind
{
    /// <summary>Anthropic thinking and redacted thinking blocks (their signatures bind them to Claude).</summary>
    Thinking,

    /// <summary>OpenAI reasoning items (encrypted content bound to OpenAI).</summary>
    Reasoning,

    /// <summary>An image the target cannot carry in the form it was sent (e.g. a URL to Ollama, which takes base64 only).</summary>
    Image,

    /// <summary>Any other provider-specific part (documents, server tool results, citations…).</summary>
    Other,
}
