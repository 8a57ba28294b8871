using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.WriteBack;
using StackExchange.Redis;

namespace Mnemo.Proxy.History;

/// <summary>
/// Warm sessions without a Redis round trip: this replica's copy of each recently used session's window (the turns a
/// read returns, with the summary fields and the session's generation), filled by reads, updated in place by this
/// replica's own writes, and dropped when another replica changes the session.
/// </summary>
/// <remarks>
/// <para>
/// Coherence: every write script moves the session's generation and announces it on <see cref="RedisScripts.Changes"/>
/// (see <see cref="RedisScripts.Append"/>). An announcement of a generation the entry already holds changes nothing; one
/// of the next generation for a turn this replica still holds as pending is its own write, which the writer applies in
/// place (reads merge pending turns meanwhile); any other drops the entry. While a read of a session is in flight its
/// changes are watched, and the read is kept only if none newer than the generation it read came meanwhile, so a read
/// that raced a change never installs what it read.
/// </para>
/// <para>
/// The cache serves only while its subscription is confirmed: at start and after any connection failure it is cleared
/// and bypassed until a probe it published comes back through the subscription (then every change after the probe
/// reaches it); a probe is also sent every second while serving, and one not back within a few seconds counts as a
/// lost subscription. Entries expire <see cref="CacheOptions.Ttl"/> (at most the keys' own ttl) after the read or
/// write that last refreshed the keys, so an entry never outlives them. Strict reads go to Redis (and refill).
/// </para>
/// <para>
/// <see cref="IMemoryCache"/> (a <see cref="MemoryCache"/> of its own, sized in bytes) rather than HybridCache's
/// in-memory tier: a hit returns the stored reference without a copy or serialization, and an own write replaces the
/// entry with a new window in place; HybridCache hands out copies of mutable values and has no in-place update.
/// </para>
/// </remarks>
internal sealed class SessionCache : IHostedService, IDisposable
{
    private const int LockCount = 64;
    private const int EntryOverhead = 256;
    private const int TurnOverhead = 96;

    private static readonly TimeSpan s_probeWhileDown = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan s_probeWhileUp = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan s_probeLost = TimeSpan.FromSeconds(5);
    private static readonly RedisChannel s_channel = RedisChannel.Literal(RedisScripts.Changes);

    private readonly RedisConnection _connection;
    private readonly PendingTurns _pending;
    private readonly MnemoMetrics _metrics;
    private readonly ILogger<SessionCache> _logger;
    private readonly MemoryCache _entries;
    private readonly TimeSpan _lifetime;
    private readonly bool _inPlace;
    private readonly ConcurrentDictionary<string, Watch> _watches = new(StringComparer.Ordinal);
    private readonly object[] _locks = new object[LockCount];
    private readonly CancellationTokenSource _stop = new();
    private readonly string _probePrefix = "probe " + Guid.NewGuid().ToString("N") + " ";
    private Task _loop = Task.CompletedTask;
    private ChannelMessageQueue? _queue;
    private volatile bool _serving;
    private long _epoch;
    private long _probe;
    private long _lostAt;
    private long _probeSeen;

    public SessionCache(
        RedisConnection connection,
        WriteBackQueue queue,
        MnemoMetrics metrics,
        IOptions<CacheOptions> options,
        IOptions<StoreOptions> store,
        IOptions<MemoryOptions> memory,
        IOptions<Summary.SummaryOptions> summary,
        ILogger<SessionCache> logger)
    {
        // With the summary on, the list's length and the covered count move with each write: an own write drops the entry.
        _inPlace = !summary.Value.Enabled;
        _connection = connection;
        _pending = queue.Pending;
        _metrics = metrics;
        _logger = logger;
        _lifetime = options.Value.Ttl < store.Value.Ttl ? options.Value.Ttl : store.Value.Ttl;
        WindowTurns = Math.Min(memory.Value.MaxContextTurns, store.Value.MaxStoredTurns);
        _entries = new MemoryCache(new MemoryCacheOptions { SizeLimit = options.Value.SizeLimit, CompactionPercentage = 0.1, TrackStatistics = true });
        for (var i = 0; i < _locks.Length; i++)
        {
            _locks[i] = new object();
        }

        metrics.CacheSubscription(false);
        metrics.Registry.AddBeforeCollectCallback(() =>
        {
            var statistics = _entries.GetCurrentStatistics();
            metrics.CacheEntries(statistics?.CurrentEntryCount ?? 0, statistics?.CurrentEstimatedSize ?? 0);
        });
    }

    /// <summary>How many of a session's newest turns an entry holds: the read path's count.</summary>
    public int WindowTurns { get; }

    /// <summary>The subscription is confirmed: entries are served and filled.</summary>
    public bool Serving => _serving;

    /// <summary>The cached read of the session, when it is held and the cache is serving.</summary>
    public bool TryGet(SessionKey session, out HistoryRead read)
    {
        if (_serving && _entries.TryGetValue(session.Slot, out Entry? entry) && entry is not null)
        {
            read = entry.Read;
            return true;
        }

        read = default;
        return false;
    }

    /// <summary>
    /// Taken before a read of the session is sent: the session's changes are watched until <see cref="Complete"/>, which
    /// keeps the read only if none newer than it came meanwhile.
    /// </summary>
    public Fill Begin(SessionKey session)
    {
        // The epoch before the state: a loss between the two shows as a new epoch at Complete.
        var epoch = Interlocked.Read(ref _epoch);
        if (!_serving)
        {
            return default;
        }

        lock (Gate(session.Slot))
        {
            _watches.GetOrAdd(session.Slot, static _ => new Watch()).Fills++;
        }

        return new Fill(epoch, true);
    }

    /// <summary>
    /// Ends a fill: caches what the read returned (null: the read failed), unless a change of the session newer than the
    /// read, or a subscription loss, came after <see cref="Begin"/>.
    /// </summary>
    public void Complete(in Fill fill, SessionKey session, HistoryRead? read)
    {
        if (!fill.Valid)
        {
            return;
        }

        var slot = session.Slot;
        lock (Gate(slot))
        {
            var watch = _watches[slot];
            if (--watch.Fills == 0)
            {
                _watches.TryRemove(slot, out _);
            }

            if (read is { } got && _serving && Interlocked.Read(ref _epoch) == fill.Epoch && watch.Seen <= got.Generation)
            {
                Put(slot, got);
            }
        }
    }

    /// <summary>
    /// The writer stored (or did not store) one of this replica's turns: called before the turn leaves the pending turns,
    /// so every read sees it in one or the other. Appends it to the entry when the entry holds the generation just
    /// before it (nothing else was written in between); drops the entry when that cannot be known.
    /// </summary>
    public void Written(Turn turn, AppendResult result)
    {
        var slot = turn.Session.Slot;
        lock (Gate(slot))
        {
            var written = result == AppendResult.Written && turn.Generation > 0;
            if (Changed(slot, written ? turn.Generation : long.MaxValue) is not { } entry)
            {
                return;
            }

            var held = entry.Read.Generation;
            if (written)
            {
                if (held >= turn.Generation)
                {
                    // Filled by a read after the write: the turn is in it.
                    return;
                }

                // The generation just before it; or a new session, read empty before its first turn, which is now its
                // only one (whatever happened in between, the session holds exactly this turn).
                var next = held == turn.Generation - 1 || (held == 0 && entry.Read.Turns.Length == 0 && turn.PushedLength == 1);
                if (_inPlace && next && TurnCodec.TryRead(turn.Payload, out var stored))
                {
                    Put(slot, Appended(entry.Read, stored, turn.Generation));
                    return;
                }
            }

            Remove(slot, CacheInvalidation.OwnWrite);
        }
    }

    /// <summary>A turn of the session was let go unwritten after an attempt that may have stored it: its entry goes.</summary>
    public void Dropped(Turn turn)
    {
        var slot = turn.Session.Slot;
        lock (Gate(slot))
        {
            if (Changed(slot, long.MaxValue) is not null)
            {
                Remove(slot, CacheInvalidation.OwnWrite);
            }
        }
    }

    /// <summary>An administrator erased the sessions <paramref name="match"/> accepts (by slot), after the store did.</summary>
    public void Erase(Func<string, bool> match)
    {
        LockAll();
        try
        {
            foreach (var (slot, watch) in _watches)
            {
                if (match(slot))
                {
                    watch.Seen = long.MaxValue;
                }
            }

            foreach (var key in _entries.Keys)
            {
                if (key is string slot && match(slot))
                {
                    Remove(slot, CacheInvalidation.Erased);
                }
            }
        }
        finally
        {
            UnlockAll();
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_queue is { } queue)
        {
            try
            {
                await queue.UnsubscribeAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or OperationCanceledException)
            {
            }
        }
    }

    public void Dispose()
    {
        _stop.Dispose();
        _entries.Dispose();
    }

    /// <summary>Subscribes once the connection exists, then probes: until confirmed while bypassed, every second while serving.</summary>
    private async Task RunAsync(CancellationToken stop)
    {
        try
        {
            ConnectionMultiplexer? multiplexer;
            while ((multiplexer = _connection.Multiplexer) is null)
            {
                await Task.Delay(50, stop).ConfigureAwait(false);
            }

            // Any connection's failure: with RESP3 the subscription shares the interactive connection. A restoration
            // too, for a failure whose event went unseen: either way announcements may have been missed meanwhile.
            multiplexer.ConnectionFailed += (_, _) => Lose();
            multiplexer.ConnectionRestored += (_, _) => Lose();
            var subscriber = multiplexer.GetSubscriber();
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    if (_queue is null)
                    {
                        var queue = await subscriber.SubscribeAsync(s_channel).ConfigureAwait(false);
                        queue.OnMessage(OnMessage);
                        _queue = queue;
                    }

                    if (_serving && Stopwatch.GetElapsedTime(Interlocked.Read(ref _probeSeen)) > s_probeLost)
                    {
                        Lose();
                    }

                    if (multiplexer.IsConnected)
                    {
                        var nonce = Interlocked.Increment(ref _probe);
                        await subscriber.PublishAsync(s_channel, _probePrefix + nonce.ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);
                    }
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
                {
                    Log.CacheSubscribeFailed(_logger, ex.GetType().Name);
                }

                await Task.Delay(_serving ? s_probeWhileUp : s_probeWhileDown, stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>In order, one at a time (the subscription's queue): a probe, or a change <c>&lt;generation&gt; &lt;turn id|-&gt; &lt;µs&gt; &lt;meta key&gt;</c>.</summary>
    private void OnMessage(ChannelMessage message)
    {
        try
        {
            var text = (string?)message.Message;
            if (text is null)
            {
                return;
            }

            if (text.StartsWith("probe ", StringComparison.Ordinal))
            {
                if (text.StartsWith(_probePrefix, StringComparison.Ordinal)
                    && long.TryParse(text.AsSpan(_probePrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var nonce)
                    && nonce > Interlocked.Read(ref _lostAt))
                {
                    Interlocked.Exchange(ref _probeSeen, Stopwatch.GetTimestamp());
                    if (!_serving)
                    {
                        Up(nonce);
                    }
                }

                return;
            }

            var span = text.AsSpan();
            var first = span.IndexOf(' ');
            var second = first < 0 ? -1 : span[(first + 1)..].IndexOf(' ') + first + 1;
            var third = second <= first ? -1 : span[(second + 1)..].IndexOf(' ') + second + 1;
            if (third <= second
                || !long.TryParse(span[..first], NumberStyles.None, CultureInfo.InvariantCulture, out var generation)
                || !long.TryParse(span[(second + 1)..third], NumberStyles.None, CultureInfo.InvariantCulture, out var changedUs)
                || !RedisKeys.TryMetaSlot(span[(third + 1)..], out var slot))
            {
                Log.CacheBadAnnouncement(_logger);
                return;
            }

            var delay = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks / 10 - changedUs;
            _metrics.CacheInvalidationDelay(Math.Max(0, delay) / 1e6);
            Announced(slot, generation, span[(first + 1)..second]);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Log.CacheBadAnnouncement(_logger);
        }
    }

    private void Announced(string slot, long generation, ReadOnlySpan<char> turnId)
    {
        lock (Gate(slot))
        {
            if (Changed(slot, generation == 0 ? long.MaxValue : generation) is not { } entry)
            {
                return;
            }

            var held = entry.Read.Generation;
            if (generation != 0 && held >= generation)
            {
                return;
            }

            // This replica's own write, announced before the writer had its reply: it is still pending, so reads see it,
            // and the writer applies it to the entry when the reply comes (or drops the entry if it cannot). Several of the
            // session's pending turns can be in flight at once (written by one call, in the order they were queued, which
            // is not always the order they were held in), so its generation is at most the entry's plus the number held.
            // A change by anyone else in between was announced before it and dropped the entry; and the writer applies a
            // turn in place only onto the generation just before it.
            if (generation != 0 && turnId is not "-" && _pending.Contains(slot, turnId, out var pending)
                && (generation <= held + pending || (held == 0 && entry.Read.Turns.Length == 0)))
            {
                return;
            }

            Remove(slot, generation == 0 ? CacheInvalidation.Erased : CacheInvalidation.Announced);
        }
    }

    /// <summary>
    /// Under the session's lock: a change of the session to <paramref name="generation"/> (<see cref="long.MaxValue"/>:
    /// unknown, or an erasure) is coming in, so a fill whose read is older must not be kept; returns the session's entry,
    /// if held.
    /// </summary>
    private Entry? Changed(string slot, long generation)
    {
        if (_watches.TryGetValue(slot, out var watch) && generation > watch.Seen)
        {
            watch.Seen = generation;
        }

        return _entries.TryGetValue(slot, out Entry? entry) ? entry : null;
    }

    /// <remarks>
    /// Under every lock, as <see cref="Up"/> is: a confirmation racing a loss either comes first (and the loss
    /// then turns the cache off) or finds its probe outdated.
    /// </remarks>
    private void Lose()
    {
        bool was;
        LockAll();
        try
        {
            was = _serving;
            _serving = false;
            Interlocked.Increment(ref _epoch);
            Interlocked.Exchange(ref _lostAt, Interlocked.Increment(ref _probe));
            _metrics.CacheSubscription(false);
        }
        finally
        {
            UnlockAll();
        }

        var dropped = Clear();
        if (dropped > 0)
        {
            _metrics.CacheInvalidation(CacheInvalidation.SubscriptionLost, dropped);
        }

        if (was)
        {
            Log.CacheDown(_logger, dropped);
        }
    }

    /// <summary>A probe published after the last loss came back: the subscription works from before that probe on.</summary>
    private void Up(long nonce)
    {
        LockAll();
        try
        {
            if (nonce <= Interlocked.Read(ref _lostAt))
            {
                return;
            }

            // Nothing is filled while bypassed; cleared again for whatever a fill racing the loss put back.
            Clear();
            _serving = true;
            _metrics.CacheSubscription(true);
        }
        finally
        {
            UnlockAll();
        }

        Log.CacheUp(_logger);
    }

    private long Clear()
    {
        var count = _entries.Count;
        _entries.Clear();
        return count;
    }

    private void Put(string slot, in HistoryRead read)
    {
        long size = EntryOverhead + (read.Summary?.Text.Length ?? 0);
        foreach (var turn in read.Turns)
        {
            size += turn.Payload.Length + TurnOverhead;
        }

        using var cacheEntry = _entries.CreateEntry(slot);
        cacheEntry.Value = new Entry(read);
        cacheEntry.Size = size;
        cacheEntry.AbsoluteExpirationRelativeToNow = _lifetime;
    }

    private void Remove(string slot, CacheInvalidation reason)
    {
        if (_entries.TryGetValue(slot, out _))
        {
            _entries.Remove(slot);
            _metrics.CacheInvalidation(reason);
        }
    }

    private HistoryRead Appended(in HistoryRead read, StoredTurn turn, long generation)
    {
        var turns = read.Turns;
        // A read can hold the turn already (its generation is read before its turns, so it may be older than they are).
        for (var i = turns.Length - 1; i >= 0; i--)
        {
            if (turns[i].SameId(turn))
            {
                return read with { Generation = generation };
            }
        }

        var keep = Math.Max(0, Math.Min(turns.Length, WindowTurns - 1));
        var next = new StoredTurn[keep + 1];
        Array.Copy(turns, turns.Length - keep, next, 0, keep);
        next[keep] = turn;
        return read with { Turns = next, Length = read.Length + 1, Generation = generation };
    }

    private object Gate(string slot) => _locks[(uint)StringComparer.Ordinal.GetHashCode(slot) % LockCount];

    private void LockAll()
    {
        foreach (var gate in _locks)
        {
            Monitor.Enter(gate);
        }
    }

    private void UnlockAll()
    {
        for (var i = _locks.Length - 1; i >= 0; i--)
        {
            Monitor.Exit(_locks[i]);
        }
    }

    /// <summary>What <see cref="Begin"/> saw: the subscription's epoch.</summary>
    internal readonly record struct Fill(long Epoch, bool Valid);

    /// <summary>A session being filled: how many reads of it are in flight, and the newest change seen meanwhile.</summary>
    private sealed class Watch
    {
        public int Fills;
        public long Seen;
    }

    private sealed record Entry(HistoryRead Read);
}
