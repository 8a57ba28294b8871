using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.History;

/// <summary>
/// The embedded store used when no Redis is configured: the same semantics as Redis (dedupe, trim, sliding expiry),
/// in this process only. History is lost on restart and not shared between replicas.
/// </summary>
internal sealed class InMemoryHistoryStore : IHistoryStore, IDisposable
{
    private static readonly TimeSpan s_sweepInterval = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly TimeSpan _ttl;
    private readonly int _maxStored;
    private readonly ITimer _sweeper;

    public InMemoryHistoryStore(IOptions<StoreOptions> store, TimeProvider time)
    {
        _time = time;
        _ttl = store.Value.Ttl;
        _maxStored = store.Value.MaxStoredTurns;
        _sweeper = time.CreateTimer(static state => ((InMemoryHistoryStore)state!).Sweep(), this, s_sweepInterval, s_sweepInterval);
    }

    public string Name => "embedded";

    public int SessionCount => _sessions.Count;

    public ValueTask<StoredTurn[]> ReadAsync(SessionKey session, int count, CancellationToken cancellationToken)
    {
        if (!_sessions.TryGetValue(session.Slot, out var entry))
        {
            return ValueTask.FromResult<StoredTurn[]>([]);
        }

        var now = _time.GetUtcNow();
        lock (entry)
        {
            if (entry.Removed || entry.ExpiresAt <= now)
            {
                entry.Removed = true;
                _sessions.TryRemove(new KeyValuePair<string, Session>(session.Slot, entry));
                return ValueTask.FromResult<StoredTurn[]>([]);
            }

            entry.ExpiresAt = now + _ttl;
            var take = Math.Min(count, entry.Turns.Count);
            var turns = new StoredTurn[take];
            entry.Turns.CopyTo(entry.Turns.Count - take, turns, 0, take);
            return ValueTask.FromResult(turns);
        }
    }

    public ValueTask<AppendResult> AppendAsync(Turn turn, CancellationToken cancellationToken)
    {
        while (true)
        {
            var entry = _sessions.GetOrAdd(turn.Session.Slot, static _ => new Session());
            var now = _time.GetUtcNow();
            lock (entry)
            {
                if (entry.Removed)
                {
                    continue;
                }

                if (entry.ExpiresAt <= now)
                {
                    entry.Turns.Clear();
                    entry.Ids.Clear();
                    entry.Order.Clear();
                }

                entry.ExpiresAt = now + _ttl;
                if (!entry.Ids.Add(turn.Id))
                {
                    return ValueTask.FromResult(AppendResult.Duplicate);
                }

                entry.Turns.Add(turn.View);
                entry.Order.Enqueue(turn.Id);
                while (entry.Turns.Count > _maxStored)
                {
                    entry.Turns.RemoveAt(0);
                }

                while (entry.Order.Count > _maxStored)
                {
                    entry.Ids.Remove(entry.Order.Dequeue());
                }

                return ValueTask.FromResult(AppendResult.Written);
            }
        }
    }

    public ValueTask<StoreStatus> CheckAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(new StoreStatus(true, "embedded: in-process store, single replica only, history lost on restart"));

    public void Dispose() => _sweeper.Dispose();

    private void Sweep()
    {
        var now = _time.GetUtcNow();
        foreach (var (slot, entry) in _sessions)
        {
            lock (entry)
            {
                if (entry.ExpiresAt <= now)
                {
                    entry.Removed = true;
                    _sessions.TryRemove(new KeyValuePair<string, Session>(slot, entry));
                }
            }
        }
    }

    private sealed class Session
    {
        public List<StoredTurn> Turns { get; } = [];

        public HashSet<string> Ids { get; } = new(StringComparer.Ordinal);

        public Queue<string> Order { get; } = new();

        public DateTimeOffset ExpiresAt { get; set; }

        public bool Removed { get; set; }
    }
}
