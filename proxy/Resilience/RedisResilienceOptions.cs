namespace Mnemo.Proxy.Resilience;

/// <summary>How Mnemo treats a slow or failing Redis (<c>Mnemo:Redis</c>).</summary>
public sealed record RedisResilienceOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Redis";

    /// <summary>A history read slower than this is abandoned and the request forwarded without memory.</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Time allowed for one write attempt.</summary>
    public TimeSpan WriteTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Retries of a failed write before the turn is dropped (and counted); 0 = none. Only failures of the write itself
    /// (refused, timed out) use them: while the connection is down turns wait, bounded by the write-back queue.
    /// </summary>
    public int WriteRetries { get; init; } = 8;

    /// <summary>First retry delay; doubles on each retry, with jitter.</summary>
    public TimeSpan WriteRetryDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Upper bound of a retry delay: how long writes can lag behind a Redis that has recovered from refusing them.</summary>
    public TimeSpan WriteRetryMaxDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Share of failed calls within <see cref="BreakerSamplingDuration"/> that opens the circuit.</summary>
    public double BreakerFailureRatio { get; init; } = 0.5;

    /// <summary>Calls needed within the sampling window before the circuit may open.</summary>
    public int BreakerMinimumThroughput { get; init; } = 10;

    /// <summary>Window over which failures are counted.</summary>
    public TimeSpan BreakerSamplingDuration { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long an open circuit skips Redis before one call probes it again. The circuit also closes as soon as a lost
    /// connection is restored.
    /// </summary>
    public TimeSpan BreakerBreakDuration { get; init; } = TimeSpan.FromSeconds(1);
}
