using System.Diagnostics;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Resilience;
using Polly;
using Polly.Registry;

namespace Mnemo.Proxy.WriteBack;

/// <summary>
/// Writes queued turns to the store off the response path. It drains after the web server has stopped (so the turns of
/// in-flight streams are included), bounded by the host's shutdown timeout; what is left then is counted and logged.
/// </summary>
internal sealed class WriteBackService : IHostedLifecycleService, IDisposable
{
    private readonly WriteBackQueue _queue;
    private readonly IHistoryStore _store;
    private readonly ResiliencePipeline _pipeline;
    private readonly MnemoMetrics _metrics;
    private readonly ILogger<WriteBackService> _logger;
    private readonly int _maxConcurrent;
    private readonly CancellationTokenSource _abort = new();
    private Task _loop = Task.CompletedTask;

    public WriteBackService(
        WriteBackQueue queue,
        IHistoryStore store,
        ResiliencePipelineProvider<string> pipelines,
        MnemoMetrics metrics,
        IOptions<WriteBackOptions> options,
        ILogger<WriteBackService> logger)
    {
        _queue = queue;
        _store = store;
        _pipeline = pipelines.GetPipeline(RedisPipelines.Write);
        _metrics = metrics;
        _logger = logger;
        _maxConcurrent = options.Value.MaxConcurrentWrites;
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
        try
        {
            while (await reader.WaitToReadAsync(abort).ConfigureAwait(false))
            {
                batch.Clear();
                while (batch.Count < _maxConcurrent && reader.TryRead(out var turn))
                {
                    batch.Add(turn);
                }

                _queue.Dequeued(batch.Count);
                await WriteBatchAsync(batch, abort).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            var left = 0;
            while (reader.TryRead(out var turn))
            {
                _queue.Pending.Remove(turn);
                left++;
            }

            _queue.Dequeued(left);
            if (left > 0)
            {
                _metrics.WriteBack(WriteBackOutcome.Dropped, left);
                Log.DroppedAtShutdown(_logger, left);
            }
        }
    }

    private Task WriteBatchAsync(List<Turn> batch, CancellationToken abort)
    {
        if (batch.Count == 1)
        {
            return WriteAsync(batch[0], abort);
        }

        // Turns of one session go one after another, in arrival order; sessions go in parallel.
        var bySession = new Dictionary<string, List<Turn>>(batch.Count, StringComparer.Ordinal);
        foreach (var turn in batch)
        {
            if (!bySession.TryGetValue(turn.Session.Slot, out var turns))
            {
                bySession[turn.Session.Slot] = turns = new List<Turn>(1);
            }

            turns.Add(turn);
        }

        var writes = new Task[bySession.Count];
        var i = 0;
        foreach (var turns in bySession.Values)
        {
            writes[i++] = WriteInOrderAsync(turns, abort);
        }

        return Task.WhenAll(writes);
    }

    private async Task WriteInOrderAsync(List<Turn> turns, CancellationToken abort)
    {
        foreach (var turn in turns)
        {
            await WriteAsync(turn, abort).ConfigureAwait(false);
        }
    }

    private async Task WriteAsync(Turn turn, CancellationToken abort)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = await _pipeline.ExecuteAsync(
                static (state, ct) => state.Store.AppendAsync(state.Turn, ct),
                (Store: _store, Turn: turn),
                abort).ConfigureAwait(false);
            _metrics.WriteBack(result == AppendResult.Written ? WriteBackOutcome.Written : WriteBackOutcome.Duplicate);
            _metrics.Stage(Stage.WriteBack, turn.Dialect, Stopwatch.GetElapsedTime(started).TotalSeconds);
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
}
