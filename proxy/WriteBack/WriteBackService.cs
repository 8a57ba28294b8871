using System.Diagnostics;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Resilience;
using Polly;

namespace Mnemo.Proxy.WriteBack;

/// <summary>
/// Writes queued turns to the store off the response path. It drains after the web server has stopped (so the turns of
/// in-flight streams are included), bounded by the host's shutdown timeout; what is left then is counted and logged.
/// </summary>
/// <remarks>
/// A batch's first attempts go out together (pipelined on the shared connection) and are awaited in order, so a busy
/// proxy wakes once per batch rather than once per turn. Only a write that failed goes through the retry pipeline.
/// A batch holds at most one turn per session; a session's later turns wait for the next batch, which keeps them in order.
/// </remarks>
internal sealed class WriteBackService : IHostedLifecycleService, IDisposable
{
    private readonly WriteBackQueue _queue;
    private readonly IHistoryStore _store;
    private readonly ResiliencePipeline _retries;
    private readonly MnemoMetrics _metrics;
    private readonly ILogger<WriteBackService> _logger;
    private readonly int _maxConcurrent;
    private readonly bool _retry;
    private readonly TimeSpan _writeTimeout;
    private readonly CancellationTokenSource _abort = new();
    private Task _loop = Task.CompletedTask;

    public WriteBackService(
        WriteBackQueue queue,
        IHistoryStore store,
        RedisPipelines pipelines,
        MnemoMetrics metrics,
        IOptions<WriteBackOptions> options,
        IOptions<RedisResilienceOptions> redis,
        ILogger<WriteBackService> logger)
    {
        _queue = queue;
        _store = store;
        _retries = pipelines.Write;
        _metrics = metrics;
        _logger = logger;
        _maxConcurrent = options.Value.MaxConcurrentWrites;
        _retry = redis.Value.WriteRetries > 0;
        _writeTimeout = redis.Value.WriteTimeout;
    }

    /// <summary>
    /// Writes a Strict request's turn at once: one attempt within the write timeout, while the end of its response waits.
    /// True when it is stored; false leaves it held for the queue and its retries (counted as retried when the attempt
    /// failed; logged either way).
    /// </summary>
    /// <remarks>
    /// Not while an earlier turn of the session is unwritten (its write failed and waits for a retry, or is still in
    /// flight): written now, this turn would be stored before it, and the session's history would be out of order for
    /// good. It goes to the queue behind that turn instead, as a Replica turn does.
    /// </remarks>
    public async Task<bool> WriteNowAsync(Turn turn)
    {
        if (_queue.Pending.Snapshot(turn.Session) is [var oldest, ..] && !ReferenceEquals(oldest, turn))
        {
            Log.StrictWriteBehindEarlierTurn(_logger);
            return false;
        }

        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = await _store.AppendAsync(turn, CancellationToken.None).AsTask().WaitAsync(_writeTimeout).ConfigureAwait(false);
            Written(turn, result, started);
            _queue.Pending.Remove(turn);
            return true;
        }
        catch (Exception ex)
        {
            _metrics.WriteBack(WriteBackOutcome.Retried);
            Log.StrictWriteDeferred(_logger, ex.GetType().Name);
            return false;
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(() => RunAsync(_abort.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // Not here: the web server stops after this service, and its in-flight streams still enqueue turns.
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        _queue.Complete();
        var queued = _queue.Depth;
        if (queued > 0)
        {
            Log.Draining(_logger, queued);
        }

        try
        {
            await _loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await _abort.CancelAsync().ConfigureAwait(false);
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    public void Dispose() => _abort.Dispose();

    private async Task RunAsync(CancellationToken abort)
    {
        var reader = _queue.Reader;
        var batch = new List<Turn>(_maxConcurrent);
        var sessions = new HashSet<string>(StringComparer.Ordinal);
        var carried = new Queue<Turn>();
        var attempts = new ValueTask<AppendResult>[_maxConcurrent];
        var failed = new List<(Turn Turn, Exception Error)>();
        try
        {
            while (carried.Count > 0 || await reader.WaitToReadAsync(abort).ConfigureAwait(false))
            {
                batch.Clear();
                sessions.Clear();
                for (var i = carried.Count; i > 0; i--)
                {
                    Take(carried.Dequeue(), batch, sessions, carried);
                }

                var dequeued = 0;
                while (batch.Count < _maxConcurrent && reader.TryRead(out var turn))
                {
                    dequeued++;
                    Take(turn, batch, sessions, carried);
                }

                _queue.Dequeued(dequeued);
                await WriteBatchAsync(batch, attempts, failed, abort).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            var left = carried.Count;
            foreach (var turn in carried)
            {
                _queue.Pending.Remove(turn);
            }

            var inChannel = 0;
            while (reader.TryRead(out var turn))
            {
                _queue.Pending.Remove(turn);
                inChannel++;
            }

            _queue.Dequeued(inChannel);
            left += inChannel;
            if (left > 0)
            {
                _metrics.WriteBack(WriteBackOutcome.Dropped, left);
                Log.DroppedAtShutdown(_logger, left);
            }
        }
    }

    private static void Take(Turn turn, List<Turn> batch, HashSet<string> sessions, Queue<Turn> carried)
    {
        if (sessions.Add(turn.Session.Slot))
        {
            batch.Add(turn);
        }
        else
        {
            carried.Enqueue(turn);
        }
    }

    private async Task WriteBatchAsync(List<Turn> batch, ValueTask<AppendResult>[] attempts, List<(Turn Turn, Exception Error)> failed, CancellationToken abort)
    {
        var started = Stopwatch.GetTimestamp();
        // Issued all before any is awaited; each stored ValueTask is awaited exactly once, just below.
#pragma warning disable CA2012
        for (var i = 0; i < batch.Count; i++)
        {
            try
            {
                attempts[i] = _store.AppendAsync(batch[i], CancellationToken.None);
            }
            catch (Exception ex)
            {
                attempts[i] = ValueTask.FromException<AppendResult>(ex);
            }
        }
#pragma warning restore CA2012

        failed.Clear();
        for (var i = 0; i < batch.Count; i++)
        {
            try
            {
                Written(batch[i], await attempts[i].ConfigureAwait(false), started);
            }
            catch (Exception ex)
            {
                failed.Add((batch[i], ex));
            }
            finally
            {
                attempts[i] = default;
            }
        }

        foreach (var turn in batch)
        {
            if (!Failed(failed, turn))
            {
                _queue.Pending.Remove(turn);
            }
        }

        foreach (var (turn, error) in failed)
        {
            if (_retry)
            {
                await RetryAsync(turn, abort).ConfigureAwait(false);
            }
            else
            {
                _queue.Pending.Remove(turn);
                _metrics.WriteBack(WriteBackOutcome.Dropped);
                Log.TurnDropped(_logger, error.GetType().Name);
            }
        }
    }

    private static bool Failed(List<(Turn Turn, Exception Error)> failed, Turn turn)
    {
        foreach (var (candidate, _) in failed)
        {
            if (ReferenceEquals(candidate, turn))
            {
                return true;
            }
        }

        return false;
    }

    private async Task RetryAsync(Turn turn, CancellationToken abort)
    {
        var started = Stopwatch.GetTimestamp();
        _metrics.WriteBack(WriteBackOutcome.Retried);
        try
        {
            var result = await _retries.ExecuteAsync(
                static (state, ct) => state.Store.AppendAsync(state.Turn, ct),
                (Store: _store, Turn: turn),
                abort).ConfigureAwait(false);
            Written(turn, result, started);
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            _metrics.WriteBack(WriteBackOutcome.Dropped);
            Log.DroppedAtShutdown(_logger, 1);
        }
        catch (Exception ex)
        {
            _metrics.WriteBack(WriteBackOutcome.Dropped);
            Log.TurnDropped(_logger, ex.GetType().Name);
        }
        finally
        {
            _queue.Pending.Remove(turn);
        }
    }

    private void Written(Turn turn, AppendResult result, long started)
    {
        _metrics.WriteBack(result == AppendResult.Written ? WriteBackOutcome.Written : WriteBackOutcome.Duplicate);
        _metrics.Stage(Stage.WriteBack, turn.Dialect, Stopwatch.GetElapsedTime(started).TotalSeconds);
    }
}
