using StackExchange.Redis;

namespace Mnemo.Proxy.Resilience;

/// <summary>When the write-back tries a failed write again, and when it gives a turn up (<c>Mnemo:Redis:Write*</c>).</summary>
/// <remarks>
/// Two kinds of failure, treated differently. A write Redis refused (out of memory, a script error) or that timed out
/// is about this write: it uses one of the turn's <see cref="RedisResilienceOptions.WriteRetries"/>, and the turn is
/// dropped when they are spent. A write that failed because there was no connection (Redis down, restarting, failing
/// over) says nothing about the turn: it is retried without using a retry, for as long as the queue has room, so an
/// outage of any length loses nothing the queue can hold. (The writer does not even try while the connection is down,
/// so such failures are only the writes in flight when it dropped, or those sent to a node that is gone.)
/// </remarks>
internal sealed class WriteRetryPolicy
{
    private readonly double _firstDelayTicks;
    private readonly double _maxDelayTicks;

    public WriteRetryPolicy(RedisResilienceOptions options)
    {
        Retries = options.WriteRetries;
        Timeout = options.WriteTimeout;
        _firstDelayTicks = options.WriteRetryDelay.Ticks;
        _maxDelayTicks = options.WriteRetryMaxDelay.Ticks;
    }

    /// <summary>Retries after the first attempt; 0 turns retrying off altogether (any failure drops the turn).</summary>
    public int Retries { get; }

    /// <summary>Time allowed for one write attempt.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>A failure of the connection rather than of the write: it does not use up the turn's retries.</summary>
    public static bool IsConnectionFailure(Exception error) => error is RedisConnectionException;

    /// <summary>
    /// The wait before retry number <paramref name="retry"/> (1 for the first): the first delay doubled on each retry,
    /// capped at the maximum, times <paramref name="jitter"/> (see <see cref="Jitter"/>).
    /// </summary>
    public TimeSpan Delay(int retry, double jitter) =>
        TimeSpan.FromTicks((long)(Math.Min(_maxDelayTicks, _firstDelayTicks * Math.Pow(2, Math.Min(retry - 1, 30))) * jitter));

    /// <summary>
    /// "Equal jitter", between half and all of a delay, drawn once per round of writes: turns that failed together are
    /// retried together (one round trip again), while replicas that failed at the same moment do not all come back in
    /// the same instant.
    /// </summary>
    public static double Jitter() => 0.5 + (Random.Shared.NextDouble() * 0.5);
}
