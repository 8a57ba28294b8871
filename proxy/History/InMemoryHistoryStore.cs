using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Admin;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Summary;

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
    private readonly int _hardCap;
    private readonly ITimer _sweeper;

    // Erased sessions: until when (Unix ms) a turn answered counts as answered before the erasure, and when the
    // tombstone itself goes.
    private readonly ConcurrentDictionary<string, (long Before, DateTimeOffset Until)> _erased = new(StringComparer.Ordinal);
    private readonly TimeSpan _tombstoneTtl;

    public InMemoryHistoryStore(IOptions<StoreOptions> store, TimeProvider time, IOptions<SummaryOptions>? summary = null, IOptions<AdminOptions>? admin = null)
    {
        _tombstoneTtl = (admin?.Value ?? new AdminOptions()).TombstoneTtl;
        // As in the Redis script: 0 = the summary is off, trim to the max as always.
        _hardCap = summary?.Value is { Enabled: true } on ? Math.Max(on.HardMaxStoredTurns, store.Value.MaxStoredTurns) : 0;
        _time = time;
        _ttl = store.Value.Ttl;
        _maxStored = store.Value.MaxStoredTurns;
        _sweeper = time.CreateTimer(static state => ((InMemoryHistoryStore)state!).Sweep(), this, s_sweepInterval, s_sweepInterval);
    }

    public string Name => "embedded";

    public int SessionCount => _sessions.Count;

    public ValueTask<StoredTurn[]> ReadAsync(SessionKey session, int count, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Read(session, count, out _));

    private StoredTurn[] Read(SessionKey session, int count, out Session? found)
    {
        found = null;
        if (!_sessions.TryGetValue(session.Slot, out var entry))
        {
            return [];
        }

        var now = _time.GetUtcNow();
        lock (entry)
        {
            if (entry.Removed || entry.ExpiresAt <= now)
            {
                entry.Removed = true;
                _sessions.TryRemove(new KeyValuePair<string, Session>(session.Slot, entry));
                return [];
            }

            entry.ExpiresAt = now + _ttl;
            var take = Math.Min(count, entry.Turns.Count);
            var turns = new StoredTurn[take];
            entry.Turns.CopyTo(entry.Turns.Count - take, turns, 0, take);
            found = entry;
            return turns;
        }
    }

    public ValueTask<HistoryRead> ReadWithSummaryAsync(SessionKey session, int count, CancellationToken cancellationToken)
    {
        var turns = Read(session, count, out var entry);
        if (entry is null)
        {
            return ValueTask.FromResult(new HistoryRead([], null, 0, 0));
        }

        lock (entry)
        {
            return ValueTask.FromResult(new HistoryRead(turns, entry.Summary, entry.Turns.Count, entry.Covered));
        }
    }

    public ValueTask<SummaryWrite> WriteSummaryAsync(
        SessionKey session, string? expectedCoveredId, string coveredId, byte[] summary, int tokens, CancellationToken cancellationToken)
    {
        if (!_sessions.TryGetValue(session.Slot, out var entry))
        {
            return ValueTask.FromResult(SummaryWrite.Superseded);
        }

        lock (entry)
        {
            if (entry.Removed || entry.Turns.Count == 0 || entry.ExpiresAt <= _time.GetUtcNow()
                || !string.Equals(entry.Summary?.CoveredId, expectedCoveredId, StringComparison.Ordinal))
            {
                return ValueTask.FromResult(SummaryWrite.Superseded);
            }

            var stored = new StoredSummary(summary, coveredId, tokens);
            entry.Summary = stored;
            entry.Covered = stored.IndexIn(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(entry.Turns)) + 1;
            entry.ExpiresAt = _time.GetUtcNow() + _ttl;
            return ValueTask.FromResult(SummaryWrite.Written);
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

                // Under the session's lock: an erasure sets its tombstone before it takes the lock to empty the session.
                if (_erased.TryGetValue(turn.Session.Slot, out var tombstone) && turn.TimestampMs <= tombstone.Before)
                {
                    if (entry.Turns.Count == 0)
                    {
                        entry.Removed = true;
                        _sessions.TryRemove(new KeyValuePair<string, Session>(turn.Session.Slot, entry));
                    }

                    return ValueTask.FromResult(AppendResult.Erased);
                }

                if (entry.ExpiresAt <= now)
                {
                    entry.Turns.Clear();
                    entry.Ids.Clear();
                    entry.Order.Clear();
                    entry.Summary = null;
                    entry.Covered = 0;
                    entry.Totals = new SessionTotals();
                }

                entry.ExpiresAt = now + _ttl;
                if (!entry.Ids.Add(turn.Id))
                {
                    return ValueTask.FromResult(AppendResult.Duplicate);
                }

                entry.Turns.Add(turn.View);
                entry.Order.Enqueue(turn.Id);
                entry.Totals.Turns++;
                entry.Totals.LastTurnMs = turn.TimestampMs;
                entry.Totals.Add(turn.Model, turn.Usage);
                // Turns and their ids go together; with the summary on, only covered turns go, unless past the hard cap.
                while (entry.Turns.Count > _maxStored && (_hardCap == 0 || entry.Covered > 0 || entry.Turns.Count > _hardCap))
                {
                    entry.Turns.RemoveAt(0);
                    entry.Ids.Remove(entry.Order.Dequeue());
                    if (entry.Covered > 0)
                    {
                        entry.Covered--;
                    }
                }

                return ValueTask.FromResult(AppendResult.Written);
            }
        }
    }

    public ValueTask<SessionRecord?> ExportAsync(SessionKey session, CancellationToken cancellationToken)
    {
        if (!_sessions.TryGetValue(session.Slot, out var entry))
        {
            return ValueTask.FromResult<SessionRecord?>(null);
        }

        lock (entry)
        {
            var now = _time.GetUtcNow();
            if (entry.Removed || entry.ExpiresAt <= now)
            {
                return ValueTask.FromResult<SessionRecord?>(null);
            }

            var elements = entry.Turns.Select(static t => t.Payload).ToArray();
            var totals = new SessionTotals { Turns = entry.Totals.Turns, LastTurnMs = entry.Totals.LastTurnMs };
            Copy(entry.Totals.All, totals.All);
            foreach (var (model, perModel) in entry.Totals.ByModel)
            {
                Copy(perModel, totals.ByModel[model] = new TokenTotals());
            }

            return ValueTask.FromResult<SessionRecord?>(new SessionRecord(elements, entry.Summary, totals, entry.ExpiresAt - now));
        }

        static void Copy(TokenTotals from, TokenTotals to)
        {
            to.Input = from.Input;
            to.Output = from.Output;
            to.CacheRead = from.CacheRead;
            to.CacheWrite = from.CacheWrite;
        }
    }

    public ValueTask<bool> EraseAsync(SessionKey session, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Erase(session.Slot));

    private bool Erase(string slot)
    {
        // The tombstone first: an append that has not taken the session's lock yet sees it.
        var now = _time.GetUtcNow();
        _erased[slot] = (now.ToUnixTimeMilliseconds(), now + _tombstoneTtl);
        if (!_sessions.TryRemove(slot, out var entry))
        {
            return false;
        }

        lock (entry)
        {
            var had = !entry.Removed && entry.ExpiresAt > now && entry.Turns.Count > 0;
            entry.Removed = true;
            entry.Turns.Clear();
            entry.Ids.Clear();
            entry.Order.Clear();
            entry.Summary = null;
            return had;
        }
    }

    /// <remarks>The cursor is the last session id of the previous page: the tenant's ids are listed in ordinal order.</remarks>
    public ValueTask<SessionPage> ListAsync(string tenant, string? cursor, int limit, CancellationToken cancellationToken)
    {
        // A cursor is the last session id of a page: anything else was not returned by this store (the interface's contract).
        if (cursor is not null && !SessionIds.IsValidSessionId(cursor))
        {
            throw new FormatException("The cursor is not one this API returned.");
        }

        var prefix = tenant + ":";
        var now = _time.GetUtcNow();
        var page = new List<SessionEntry>();
        var ids = _sessions.Keys
            .Where(slot => slot.StartsWith(prefix, StringComparison.Ordinal) && (cursor is null || string.CompareOrdinal(slot, prefix.Length, cursor, 0, int.MaxValue) > 0))
            .Order(StringComparer.Ordinal);
        foreach (var slot in ids)
        {
            if (page.Count == limit)
            {
                return ValueTask.FromResult(new SessionPage(page, page[^1].Session));
            }

            if (_sessions.TryGetValue(slot, out var entry))
            {
                lock (entry)
                {
                    if (!entry.Removed && entry.ExpiresAt > now && entry.Turns.Count > 0)
                    {
                        page.Add(new SessionEntry(slot[prefix.Length..], entry.Turns.Count, entry.Totals.Turns, entry.Totals.LastTurnMs));
                    }
                }
            }
        }

        return ValueTask.FromResult(new SessionPage(page, null));
    }

    public ValueTask<EraseResult> EraseTenantAsync(string tenant, CancellationToken cancellationToken)
    {
        var prefix = tenant + ":";
        long erased = 0;
        foreach (var slot in _sessions.Keys)
        {
            if (slot.StartsWith(prefix, StringComparison.Ordinal) && Erase(slot))
            {
                erased++;
            }
        }

        return ValueTask.FromResult(new EraseResult(erased));
    }

    public ValueTask<StoreStatus> CheckAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult(new StoreStatus(true, "embedded: in-process store, single replica only, history lost on restart"));

    public void Dispose() => _sweeper.Dispose();

    private void Sweep()
    {
        var now = _time.GetUtcNow();
        foreach (var (slot, tombstone) in _erased)
        {
            if (tombstone.Until <= now)
            {
                _erased.TryRemove(new KeyValuePair<string, (long, DateTimeOffset)>(slot, tombstone));
            }
        }

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

        public StoredSummary? Summary { get; set; }

        /// <summary>How many of the oldest turns the summary covers (Redis meta <c>c</c>).</summary>
        public int Covered { get; set; }

        public bool Removed { get; set; }

        /// <summary>Usage of every turn written since the session began (not only of those still kept).</summary>
        public SessionTotals Totals { get; set; } = new();
    }
}
