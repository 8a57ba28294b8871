using System.Diagnostics;
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

    public FailOpenReader(IHistoryStore store, RedisPipelines pipelines, ILogger<FailOpenReader> logger)
    {
        _store = store;
        _pipeline = pipelines.Read;
        _logger = logger;
    }

    /// <summary>Only the caller's cancellation (the client went away) escapes as an exception.</summary>
    /// <remarks>With <paramref name="withSummary"/>, the summary, the list length and the covered count come in the same round trip.</remarks>
    public async ValueTask<ReadResult> ReadAsync(SessionKey session, int count, CancellationToken cancellationToken, bool withSummary = false)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            if (withSummary)
            {
                var read = await _pipeline.ExecuteAsync(
                    static (state, ct) => state.Store.ReadWithSummaryAsync(state.Session, state.Count, ct),
                    (Store: _store, Session: session, Count: count),
                    cancellationToken).ConfigureAwait(false);
                return new ReadResult(read.Turns, Stopwatch.GetElapsedTime(started), read.Summary, read.Length, read.Covered);
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
    }
}

/// <summary>
/// What a fail-open read got: the stored turns (oldest first), or null when the store could not answer in time; with
/// the summary on, the summary (null when none), the list's length and how many of its oldest turns the summary covers.
/// </summary>
internal readonly record struct ReadResult(StoredTurn[]? Turns, TimeSpan Elapsed, StoredSummary? Summary = null, long Length = 0, long Covered = 0)
{
    public bool Degraded => Turns is null;
}
