using System.Collections.Concurrent;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.WriteBack;

/// <summary>
/// Turns answered by this replica but not yet confirmed by the store, by session. A read takes a snapshot before it asks
/// the store, so a turn is always seen in one of the two: pending until its write is acknowledged, stored after.
/// </summary>
internal sealed class PendingTurns
{
    private readonly ConcurrentDictionary<string, Turn[]> _bySession = new(StringComparer.Ordinal);

    public int SessionCount => _bySession.Count;

    /// <summary>Each session's held turns, oldest first (never an empty array).</summary>
    public IEnumerable<Turn[]> Sessions()
    {
        foreach (var (_, turns) in _bySession)
        {
            if (turns.Length > 0)
            {
                yield return turns;
            }
        }
    }

    public Turn[] Snapshot(SessionKey session) => _bySession.TryGetValue(session.Slot, out var turns) ? turns : [];

    /// <summary>
    /// Whether the turn <paramref name="id"/> of the session <paramref name="slot"/> is held here; <paramref name="count"/>
    /// is how many turns of the session are held (0 when none).
    /// </summary>
    public bool Contains(string slot, ReadOnlySpan<char> id, out int count)
    {
        count = 0;
        if (!_bySession.TryGetValue(slot, out var turns))
        {
            return false;
        }

        count = turns.Length;
        foreach (var turn in turns)
        {
            if (id.SequenceEqual(turn.Id))
            {
                return true;
            }
        }

        return false;
    }

    public void Add(Turn turn) =>
        _bySession.AddOrUpdate(turn.Session.Slot, static (_, t) => [t], static (_, existing, t) => [.. existing, t], turn);

    /// <summary>
    /// Marks every held turn of the sessions <paramref name="match"/> accepts (by slot) as erased and stops showing them
    /// to reads; the writer lets them go when it reaches them. Returns how many there were.
    /// </summary>
    public int Erase(Func<string, bool> match)
    {
        var count = 0;
        foreach (var (slot, turns) in _bySession)
        {
            if (!match(slot))
            {
                continue;
            }

            foreach (var turn in turns)
            {
                turn.Erased = true;
                Remove(turn);
                count++;
            }
        }

        return count;
    }

    public void Remove(Turn turn)
    {
        var slot = turn.Session.Slot;
        while (_bySession.TryGetValue(slot, out var existing))
        {
            var index = Array.IndexOf(existing, turn);
            if (index < 0)
            {
                return;
            }

            if (existing.Length == 1)
            {
                if (_bySession.TryRemove(new KeyValuePair<string, Turn[]>(slot, existing)))
                {
                    return;
                }

                continue;
            }

            Turn[] remaining = [.. existing.AsSpan(0, index), .. existing.AsSpan(index + 1)];
            if (_bySession.TryUpdate(slot, remaining, existing))
            {
                return;
            }
        }
    }
}
