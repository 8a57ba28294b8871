using System.Diagnostics;
using Mnemo.Proxy.Resilience;
using Mnemo.Proxy.Sessions;
using Polly;

namespace Mnemo.Proxy.History;

/// <summary>Reads history through the read pipeline and fails open: a failed or slow read means no memory, never a failed request.</summary>
internal sealed class HistoryReader
{
    private readonly IHistoryStore _store;
    private readonly ResiliencePipeline _pipeline;
    private readonly ILogger<HistoryReader> _logger;

    public HistoryReader(IHistoryStore store, RedisPipelines pipelines, ILogger<HistoryReader> logger)
    {
        _store = store;
        _pipeline = pipelines.Read;
        _logger = logger;
    }

    /// <summary>Only the caller's cancellation (the client went away) escapes as an exception.</summary>
    public async ValueTask<HistoryRead> ReadAsync(SessionKey session, int count, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var window = await _pipeline.ExecuteAsync(
                static (state, ct) => state.Store.ReadAsync(state.Session, state.Count, ct),
                (Store: _store, Session: session, Count: count),
                cancellationToken).ConfigureAwait(false);
            return new HistoryRead(window, Stopwatch.GetElapsedTime(started));
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Only the type: SE.Redis messages can quote the key, which holds the session id.
            var type = ex.GetType().Name;
            Log.ReadDegraded(_logger, type);
            return new HistoryRead(null, Stopwatch.GetElapsedTime(started));
        }
    }
}

/// <summary>A history read: the window, or null when the store could not answer in time.</summary>
internal readonly record struct HistoryRead(HistoryWindow? Window, TimeSpan Elapsed)
{
    public bool Degraded => Window is null;
}
