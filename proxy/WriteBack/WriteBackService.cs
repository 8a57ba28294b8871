using System.Diagnostics;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Resilience;
using Mnemo.Proxy.Tokens;

namespace Mnemo.Proxy.WriteBack;

/// <summary>
/// Writes queued turns to the store off the response path. It drains after the web server has stopped (so the turns of
/// in-flight streams are included), bounded by the host's shutdown timeout; what is left then is counted and logged.
/// </summary>
/// <remarks>
/// <para>
/// The writer works in rounds: each round's writes go out together (pipelined on the shared connection) and are awaited
/// in order, so a busy proxy wakes once per round rather than once per turn, and one round trip carries many turns.
/// </para>
/// <para>
/// Turns wait in one line per session, and a line is written from its head: a round holds one call per session, with
/// the turns waiting at the head of its line (up to <see cref="MaxTurnsPerCall"/>, written in order by one script call),
/// and a session's later turn is never written before an earlier one that failed. A failed head waits for its
/// retry time (see <see cref="WriteRetryPolicy"/>) with its line behind it, while the other sessions' lines go on being
/// written; when it is due, it joins the next round with whatever else is ready. While the connection is down nothing
/// is tried at all; when it comes back, the waiting turns go out in full rounds at once.
/// </para>
/// </remarks>
internal sealed class WriteBackService : IHostedLifecycleService, IDisposable
{
    // The most turns of one session written by one call, and their most payload bytes (a single larger turn still goes):
    // a session whose turns queued up (busy, or through an outage) catches up in one round trip instead of one per turn.
    internal const int MaxTurnsPerCall = 16;
    private const int MaxBytesPerCall = 256 * 1024;

    // How often the writer looks at the connection while it is down; the lines wait meanwhile.
    private static readonly TimeSpan s_connectionPoll = TimeSpan.FromMilliseconds(20);

    private readonly WriteBackQueue _queue;
    private readonly IHistoryStore _store;
    private readonly RedisConnection? _connection;
    private readonly SessionCache? _cache;
    private readonly WriteRetryPolicy _policy;
    private readonly MnemoMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<WriteBackService> _logger;
    private readonly TokenCounter _tokens;
    private readonly int _maxConcurrent;
    private readonly TimeSpan _maxAge;
    private readonly CancellationTokenSource _abort = new();

    // The writer's state: touched by its loop only.
    private readonly Dictionary<string, SessionLine> _lines = new(StringComparer.Ordinal);
    private readonly Queue<SessionLine> _ready = new();
    private readonly PriorityQueue<SessionLine, long> _waiting = new();
    private readonly Stack<SessionLine> _spare = new();
    private Task _loop = Task.CompletedTask;

    public WriteBackService(
        WriteBackQueue queue,
        IHistoryStore store,
        MnemoMetrics metrics,
        TimeProvider time,
        IOptions<WriteBackOptions> options,
        IOptions<RedisResilienceOptions> redis,
        ILogger<WriteBackService> logger,
        TokenCounter tokens,
        IOptions<Admin.AdminOptions> admin,
        RedisConnection? connection = null,
        SessionCache? cache = null)
    {
        _cache = cache;
        // With erasure possible, a turn older than the tombstones must not be written: it could outlive its session's.
        _maxAge = admin.Value.Enabled ? admin.Value.TombstoneTtl - admin.Value.ClockSkew : TimeSpan.MaxValue;
        _tokens = tokens;
        _queue = queue;
        _store = store;
        _connection = connection;
        _policy = new WriteRetryPolicy(redis.Value);
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _maxConcurrent = options.Value.MaxConcurrentWrites;
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

        // Counted here, on the Strict response's path (its end waits for the write anyway): a millisecond or two for a
        // long turn, against the write's round trip.
        Count(turn);
        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = await _store.AppendAsync(turn, CancellationToken.None).AsTask().WaitAsync(_policy.Timeout).ConfigureAwait(false);
            Written(turn, result, started);
            // The cache before the pending turns: a read sees the turn in one or the other.
            _cache?.Written(turn, result);
            _queue.Pending.Remove(turn);
            // Turns of the session answered after it and already complete were waiting for it.
            _queue.Flush(turn.Session);
            return true;
        }
        catch (Exception ex)
        {
            _metrics.WriteBack(WriteBackOutcome.Retried);
            Log.StrictWriteDeferred(_logger, ex.GetType().Name);
            return false;
        }
    }

    /// <summary>
    /// An administrator erased the sessions <paramref name="match"/> accepts (by slot): their turns held on this replica
    /// are no longer read and never written (one being written now is refused by the erasure's tombstone). Returns how
    /// many turns were let go.
    /// </summary>
    public int Erase(Func<string, bool> match) => _queue.Pending.Erase(match);

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _tokens.Warm();
        _loop = Task.Run(() => RunAsync(_abort.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // Not here: the web server stops after this service, and its in-flight streams still enqueue turns.
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        // The web server has stopped: every request that will ever complete has. A turn still held never will, and must
        // not hold up the turns of its session behind it.
        var abandoned = _queue.Settle();
        if (abandoned > 0)
        {
            Log.AbandonedAtShutdown(_logger, abandoned);
        }

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
        var round = new List<SessionLine>(_maxConcurrent);
        var attempts = new ValueTask<AppendResult>[_maxConcurrent];
        var wasDown = false;
        try
        {
            while (true)
            {
                while (reader.TryRead(out var turn))
                {
                    File(turn);
                }

                if (_lines.Count == 0 && reader.Completion.IsCompleted)
                {
                    return;
                }

                if (_connection is { IsConnected: false })
                {
                    // Every write would fail at once: leave the turns where they are, without using their retries.
                    wasDown = true;
                    await WaitAsync(reader, s_connectionPoll, abort).ConfigureAwait(false);
                    continue;
                }

                if (wasDown)
                {
                    wasDown = false;
                    ReleaseConnectionWaits();
                }

                PromoteDue(_time.GetTimestamp());
                round.Clear();
                while (round.Count < _maxConcurrent && _ready.TryDequeue(out var line))
                {
                    if (!LetGoErased(line))
                    {
                        round.Add(line);
                    }
                }

                if (round.Count > 0)
                {
                    await WriteRoundAsync(round, attempts, abort).ConfigureAwait(false);
                }
                else
                {
                    var wait = _waiting.TryPeek(out _, out var due) ? _time.GetElapsedTime(_time.GetTimestamp(), due) : Timeout.InfiniteTimeSpan;
                    await WaitAsync(reader, wait, abort).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            var left = 0;
            foreach (var line in _lines.Values)
            {
                foreach (var turn in line.Turns)
                {
                    Forget(turn);
                    left++;
                }
            }

            _lines.Clear();
            _ready.Clear();
            _waiting.Clear();
            while (reader.TryRead(out var turn))
            {
                Forget(turn);
                left++;
            }

            if (left > 0)
            {
                _metrics.WriteBack(WriteBackOutcome.Dropped, left);
                Log.DroppedAtShutdown(_logger, left);
            }
        }
    }

    /// <summary>Until a turn arrives, the wait is over, or the service is aborted (thrown).</summary>
    private async Task WaitAsync(System.Threading.Channels.ChannelReader<Turn> reader, TimeSpan wait, CancellationToken abort)
    {
        if (wait == TimeSpan.Zero || (wait < TimeSpan.Zero && wait != Timeout.InfiniteTimeSpan))
        {
            return;
        }

        if (reader.Completion.IsCompleted)
        {
            // Draining at shutdown: nothing more can arrive; the wait is for a retry (never infinite, lines are left).
            await Task.Delay(wait, _time, abort).ConfigureAwait(false);
            return;
        }

        using var timeout = wait == Timeout.InfiniteTimeSpan ? null : new CancellationTokenSource(wait, _time);
        using var linked = timeout is null ? null : CancellationTokenSource.CreateLinkedTokenSource(abort, timeout.Token);
        try
        {
            await reader.WaitToReadAsync(linked?.Token ?? abort).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!abort.IsCancellationRequested)
        {
        }
    }

    /// <summary>A new turn joins the end of its session's line; a session with no line starts one, ready to write.</summary>
    private void File(Turn turn)
    {
        if (_lines.TryGetValue(turn.Session.Slot, out var line))
        {
            line.Turns.Enqueue(turn);
            return;
        }

        line = _spare.TryPop(out var spare) ? spare : new SessionLine();
        line.Slot = turn.Session.Slot;
        line.Turns.Enqueue(turn);
        _lines.Add(line.Slot, line);
        _ready.Enqueue(line);
    }

    private void PromoteDue(long now)
    {
        while (_waiting.TryPeek(out var line, out var due) && due <= now)
        {
            _waiting.Dequeue();
            _ready.Enqueue(line);
        }
    }

    /// <summary>The connection is back: turns whose write failed with it are written now, not after their backoff.</summary>
    private void ReleaseConnectionWaits()
    {
        if (_waiting.Count == 0)
        {
            return;
        }

        var waiting = _waiting.UnorderedItems.ToArray();
        _waiting.Clear();
        foreach (var (line, due) in waiting)
        {
            if (line.ConnectionLost)
            {
                _ready.Enqueue(line);
            }
            else
            {
                _waiting.Enqueue(line, due);
            }
        }
    }

    private async Task WriteRoundAsync(List<SessionLine> round, ValueTask<AppendResult>[] attempts, CancellationToken abort)
    {
        var started = _time.GetTimestamp();
        var startedWall = Stopwatch.GetTimestamp();
        var jitter = WriteRetryPolicy.Jitter();
        // Issued all before any is awaited; each stored ValueTask is awaited exactly once, just below.
#pragma warning disable CA2012
        for (var i = 0; i < round.Count; i++)
        {
            var line = round[i];
            try
            {
                Gather(line);
                if (line.Batch.Count == 1)
                {
                    attempts[i] = _store.AppendAsync(line.Batch[0], CancellationToken.None);
                }
                else
                {
                    line.Results = _store.AppendManyAsync(line.Batch, CancellationToken.None);
                }
            }
            catch (Exception ex)
            {
                attempts[i] = ValueTask.FromException<AppendResult>(ex);
                line.Results = default;
                line.Batch.Clear();
                line.Batch.Add(line.Turns.Peek());
            }
        }
#pragma warning restore CA2012

        for (var i = 0; i < round.Count; i++)
        {
            var line = round[i];
            var batch = line.Batch;
            try
            {
                // One turn's result without an array (the usual case), or each turn's of a call that wrote several.
                AppendResult one = default;
                AppendResult[]? several = null;
                if (batch.Count == 1)
                {
                    var attempt = attempts[i];
                    attempts[i] = default;
                    one = attempt.IsCompleted ? await attempt.ConfigureAwait(false) : await WithinAsync(attempt.AsTask(), started, abort).ConfigureAwait(false);
                }
                else
                {
                    var attempt = line.Results;
                    line.Results = default;
                    several = attempt.IsCompleted ? await attempt.ConfigureAwait(false) : await WithinAsync(attempt.AsTask(), started, abort).ConfigureAwait(false);
                }

                // The cache before the pending turns: a read sees each turn in one or the other.
                for (var j = 0; j < batch.Count; j++)
                {
                    _cache?.Written(batch[j], several?[j] ?? one);
                }

                // Released from the queue before they are counted: whoever sees a turn written sees it gone from the queue.
                Done(line, batch.Count);
                for (var j = 0; j < batch.Count; j++)
                {
                    Written(batch[j], several?[j] ?? one, startedWall);
                }
            }
            catch (OperationCanceledException) when (abort.IsCancellationRequested)
            {
                for (var j = i + 1; j < round.Count; j++)
                {
                    attempts[j] = default;
                    round[j].Results = default;
                }

                throw;
            }
            catch (Exception ex)
            {
                // The whole call failed: its turns stay in line, the head waits for its retry.
                Failed(line, line.Turns.Peek(), ex, jitter);
            }
            finally
            {
                batch.Clear();
            }
        }
    }

    /// <summary>One deadline for the round: every write in it went out at the same time.</summary>
    private Task<T> WithinAsync<T>(Task<T> attempt, long started, CancellationToken abort)
    {
        var left = _policy.Timeout - _time.GetElapsedTime(started);
        return attempt.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _time, abort);
    }

    /// <summary>
    /// The turns of the line's next call: its head, and the turns behind it up to the per-call bounds, stopping at one that
    /// is let go unwritten (it becomes a head first, see <see cref="LetGoErased"/>). Each is counted, in order.
    /// </summary>
    private void Gather(SessionLine line)
    {
        var batch = line.Batch;
        batch.Clear();
        var bytes = 0L;
        foreach (var turn in line.Turns)
        {
            if (batch.Count > 0 && (batch.Count == MaxTurnsPerCall || bytes + turn.Size > MaxBytesPerCall || turn.Erased || TooOld(turn)))
            {
                break;
            }

            batch.Add(turn);
            bytes += turn.Size;
        }

        foreach (var turn in batch)
        {
            Count(turn);
        }
    }

    /// <summary>
    /// Lets go of the line's leading turns that were erased, or are older than an erasure's tombstone lasts; true when
    /// none is left to write (the line is closed or waits for more).
    /// </summary>
    private bool LetGoErased(SessionLine line)
    {
        while (line.Turns.TryPeek(out var turn))
        {
            if (turn.Erased)
            {
                _metrics.WriteBack(WriteBackOutcome.Erased);
            }
            else if (TooOld(turn))
            {
                _metrics.WriteBack(WriteBackOutcome.Dropped);
                Log.TurnTooOld(_logger);
            }
            else
            {
                return false;
            }

            line.Turns.Dequeue();
            line.Failures = 0;
            line.Retries = 0;
            Forget(turn);
        }

        Next(line);
        return true;
    }

    /// <summary>Older than an erasure's tombstone lasts: it could outlive its session's erasure, so it is not written.</summary>
    private bool TooOld(Turn turn) =>
        _maxAge != TimeSpan.MaxValue && _time.GetUtcNow().ToUnixTimeMilliseconds() - turn.TimestampMs > _maxAge.TotalMilliseconds;

    /// <summary>The line's first <paramref name="count"/> turns are written: they leave it, and it goes on.</summary>
    private void Done(SessionLine line, int count)
    {
        for (var i = 0; i < count; i++)
        {
            Forget(line.Turns.Dequeue());
        }

        line.Failures = 0;
        line.Retries = 0;
        Next(line);
    }

    private void Failed(SessionLine line, Turn turn, Exception error, double jitter)
    {
        var connection = WriteRetryPolicy.IsConnectionFailure(error);
        if (_policy.Retries == 0 || (!connection && line.Failures >= _policy.Retries))
        {
            line.Turns.Dequeue();
            line.Failures = 0;
            line.Retries = 0;
            // An attempt may have stored it after all: the session's cached window cannot tell.
            _cache?.Dropped(turn);
            Forget(turn);
            _metrics.WriteBack(WriteBackOutcome.Dropped);
            // Only the type: SE.Redis messages can quote the key, which holds the session id.
            Log.TurnDropped(_logger, error.GetType().Name);
            Next(line);
            return;
        }

        _metrics.WriteBack(WriteBackOutcome.Retried);
        if (!connection)
        {
            line.Failures++;
        }

        line.Retries++;
        line.ConnectionLost = connection;
        _waiting.Enqueue(line, _time.GetTimestamp() + (long)(_policy.Delay(line.Retries, jitter).TotalSeconds * _time.TimestampFrequency));
    }

    /// <summary>The line's next turn is ready to write; a line with none left is closed.</summary>
    private void Next(SessionLine line)
    {
        if (line.Turns.Count > 0)
        {
            _ready.Enqueue(line);
            return;
        }

        _lines.Remove(line.Slot);
        line.Slot = "";
        line.ConnectionLost = false;
        if (_spare.Count < _maxConcurrent)
        {
            _spare.Push(line);
        }
    }

    /// <summary>
    /// Replaces the turn's estimate with its count, once, before its first write: the tokens of its messages as they are
    /// spliced (the JSON of the dialect's request format, which is more than the provider counts for the same messages, so
    /// a budget in these counts errs on the short side), plus one for the comma that joins it to the next turn; and its
    /// position, the session's running total before it. A read only ever uses what is stored here.
    /// </summary>
    /// <remarks>
    /// The position follows the turn's predecessor: a turn still pending at capture was counted before this one (a
    /// session's turns are written in order), else the end the read saw. Failing to count is not failing to write: the
    /// turn keeps its estimate.
    /// </remarks>
    private void Count(Turn turn)
    {
        if (turn.IsCounted || !_tokens.Enabled)
        {
            turn.Previous = null;
            return;
        }

        try
        {
            var view = turn.View;
            var tokens = _tokens.Count(view.Messages.Span, turn.Model) + 1;
            var position = turn.Previous is { IsCounted: true } previous
                ? previous.View.Position + previous.View.Tokens
                : Math.Max(0, turn.PreviousEnd);
            var payload = TurnCodec.WithCount(turn.Payload, tokens, position);
            if (TurnCodec.TryRead(payload, out var counted))
            {
                turn.Counted(payload, counted);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Log.TurnNotCounted(_logger, ex.GetType().Name);
        }
        finally
        {
            // Not kept longer than needed: a chain of pending turns would hold every earlier one.
            turn.Previous = null;
        }
    }

    /// <summary>Written or dropped: no longer pending for reads, and its room in the queue is free.</summary>
    private void Forget(Turn turn)
    {
        _queue.Pending.Remove(turn);
        _queue.Release(turn);
    }

    private void Written(Turn turn, AppendResult result, long started)
    {
        _metrics.WriteBack(result switch
        {
            AppendResult.Written => WriteBackOutcome.Written,
            AppendResult.Erased => WriteBackOutcome.Erased,
            _ => WriteBackOutcome.Duplicate,
        });
        _metrics.Stage(Stage.WriteBack, turn.Dialect, Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>A session's unwritten turns, oldest first; only the head is ever being written or waiting for a retry.</summary>
    private sealed class SessionLine
    {
        public string Slot { get; set; } = "";

        public Queue<Turn> Turns { get; } = new();

        /// <summary>Failed attempts of the head that use up its retries (not those of a lost connection).</summary>
        public int Failures { get; set; }

        /// <summary>Retries of the head so far, of either kind: the backoff's exponent.</summary>
        public int Retries { get; set; }

        /// <summary>The head's last attempt failed with the connection: it goes as soon as the connection is back.</summary>
        public bool ConnectionLost { get; set; }

        /// <summary>The turns of the call in flight in this round, from the head (touched by the writer's loop only).</summary>
        public List<Turn> Batch { get; } = new(MaxTurnsPerCall);

        /// <summary>The call in flight when it holds more than one turn.</summary>
        public ValueTask<AppendResult[]> Results { get; set; }
    }
}
