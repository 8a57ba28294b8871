using System.Diagnostics;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Resilience;
using Mnemo.Proxy.Sessions;
using Polly;

namespace Mnemo.Proxy.History;

/// <summary>Reads history through the read pipeline and fails open: a failed or slow read means no memory, never a failed request.</summary>
internal sealed class FailOpenReader
{
    private readonly IHistoryStore _store;
    private readonly ResiliencePipeline _pipeline;
    private readonly ILogger<FailOpenReader> _logger;
    private readonly SessionCache? _cache;
    private readonly MnemoMetrics _metrics;

    public FailOpenReader(
        IHistoryStore store, RedisPipelines pipelines, ILogger<FailOpenReader> logger, MnemoMetrics metrics, SessionCache? cache = null)
    {
        _store = store;
        _pipeline = pipelines.Read;
        _logger = logger;
        _metrics = metrics;
        _cache = cache;
    }

    /// <summary>Only the caller's cancellation (the client went away) escapes as an exception.</summary>
    /// <remarks>
    /// With <paramref name="withSummary"/>, the summary, the list length and the covered count come in the same round
    /// trip. With the session cache on, a warm session is answered from it without a round trip, unless
    /// <paramref name="strict"/> asks for Redis (a Strict request reads what every replica has written).
    /// </remarks>
    public ValueTask<ReadResult> ReadAsync(
        SessionKey session, int count, CancellationToken cancellationToken, bool withSummary = false, bool strict = false)
    {
        var started = Stopwatch.GetTimestamp();
        var cache = _cache is { } candidate && count == candidate.WindowTurns ? candidate : null;
        SessionCache.Fill fill = default;
        if (cache is not null)
        {
            if (strict || !cache.Serving)
            {
                _metrics.CacheLookup(CacheLookup.Bypass);
            }
            else if (cache.TryGet(session, out var cached))
            {
                // Answered here, with no state machine: the warm path of every memory request.
                _metrics.CacheLookup(CacheLookup.Hit);
                return new ValueTask<ReadResult>(Result(cached, withSummary, started));
            }
            else
            {
                _metrics.CacheLookup(CacheLookup.Miss);
            }

            fill = cache.Begin(session);
        }

        return ReadStoreAsync(session, count, withSummary, cache, fill, started, cancellationToken);
    }

    private async ValueTask<ReadResult> ReadStoreAsync(
        SessionKey session, int count, bool withSummary, SessionCache? cache, SessionCache.Fill fill, long started, CancellationToken cancellationToken)
    {
        HistoryRead? got = null;
        try
        {
            if (withSummary || cache is not null)
            {
                var read = await _pipeline.ExecuteAsync(
                    static (state, ct) => state.Store.ReadWithSummaryAsync(state.Session, state.Count, ct),
                    (Store: _store, Session: session, Count: count),
                    cancellationToken).ConfigureAwait(false);
                got = read;
                return Result(read, withSummary, started);
            }

            var turns = await _pipeline.ExecuteAsync(
                static (state, ct) => state.Store.ReadAsync(state.Session, state.Count, ct),
                (Store: _store, Session: session, Count: count),
                cancellationToken).ConfigureAwait(false);
            return new ReadResult(turns, Stopwatch.GetElapsedTime(started));
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Only the type: SE.Redis messages can quote the key, which holds the session id.
            var type = ex.GetType().Name;
            Log.ReadDegraded(_logger, type);
            return new ReadResult(null, Stopwatch.GetElapsedTime(started));
        }
        finally
        {
            // Also when the read failed or was abandoned: the fill's watch on the session ends.
            cache?.Complete(fill, session, got);
        }
    }

    private static ReadResult Result(in HistoryRead read, bool withSummary, long started) =>
        withSummary
            ? new ReadResult(read.Turns, Stopwatch.GetElapsedTime(started), read.Summary, read.Length, read.Covered)
            : new ReadResult(read.Turns, Stopwatch.GetElapsedTime(started));
}

/// <summary>
/// What a fail-open read got: the stored turns (oldest first), or null when the store could not answer in time; with
/// the summary on, the summary (null when none), the list's length and how many of its oldest turns the summary covers.
/// </summary>
internal readonly record struct ReadResult(StoredTurn[]? Turns, TimeSpan Elapsed, StoredSummary? Summary = null, long Length = 0, long Covered = 0)
{
    public bool Degraded => Turns is null;
}
