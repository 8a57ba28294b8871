using System.Buffers;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Context;

/// <summary>The turns chosen for one request, oldest first, and their messages as ready-to-splice segments in the request's dialect.</summary>
/// <remarks>
/// Both arrays are rented (a memory request would otherwise allocate them every time) and go back with
/// <see cref="Return"/> once the body is spliced.
/// </remarks>
internal readonly struct ContextWindow
{
    private ContextWindow(StoredTurn[] turns, int count)
    {
        Turns = turns;
        Count = count;
    }

    /// <summary>The chosen turns, oldest first; only the first <see cref="Count"/> are used (the array is rented, maybe longer).</summary>
    public StoredTurn[] Turns { get; }

    public int Count { get; }

    /// <summary>
    /// Chooses the newest turns that fit <see cref="MemoryOptions.MaxContextTurns"/>, <see cref="MemoryOptions.MaxContextTokens"/>
    /// and <see cref="MemoryOptions.MaxContextBytes"/>
    /// from what the store returned plus this replica's turns not yet written (read-your-writes), then leaves out the
    /// oldest while it continues a tool exchange whose start is not in the window.
    /// </summary>
    /// <remarks>
    /// A tool result whose call was left out (by the limits, or trimmed from the store) is rejected by the provider, and
    /// a failed request stores nothing: the session would fail on every request. The window is never widened to take
    /// the call back in: the limits are the operator's. Only the oldest boundary can cut an exchange, the chosen turns
    /// being the newest in a row; a call in the newest turn is answered by the client's own new tool results.
    /// </remarks>
    public static ContextWindow Choose(StoredTurn[] stored, Turn[] pending, int maxTurns, int maxTokens, long maxBytes = 0)
    {
        var budget = new Budget(maxTokens, maxBytes);
        var total = stored.Length + pending.Length;
        if (total == 0 || maxTurns == 0)
        {
            return default;
        }

        // Newest first: pending turns are newer than anything stored, unless the write already landed.
        var limit = Math.Min(total, maxTurns);
        var chosen = ArrayPool<StoredTurn>.Shared.Rent(limit);
        var count = 0;
        for (var i = pending.Length - 1; i >= 0 && count < limit; i--)
        {
            if (!Contains(stored, pending[i].View.Id) && !Take(pending[i].View, chosen, ref count, ref budget))
            {
                return Finish(chosen, count);
            }
        }

        for (var i = stored.Length - 1; i >= 0 && count < limit; i--)
        {
            if (!Take(stored[i], chosen, ref count, ref budget))
            {
                break;
            }
        }

        return Finish(chosen, count);
    }

    /// <summary>
    /// The messages of the chosen turns in <paramref name="target"/>'s format: a turn of the same dialect is its stored
    /// bytes, untouched; each run of turns stored by other dialects is converted as one segment. The segments are the
    /// first <paramref name="count"/> of a rented array: give it back with <see cref="Return"/>.
    /// </summary>
    public ReadOnlyMemory<byte>[] Segments(Dialect target, Converter converter, out int count)
    {
        count = 0;
        if (Count == 0)
        {
            return [];
        }

        var segments = ArrayPool<ReadOnlyMemory<byte>>.Shared.Rent(Count);
        var written = 0;
        List<ForeignTurn>? foreign = null;
        for (var i = 0; i < Count; i++)
        {
            ref readonly var turn = ref Turns[i];
            if (turn.Dialect == target.Id)
            {
                if (foreign is { Count: > 0 })
                {
                    segments[written++] = converter.Convert(target, foreign);
                    foreign.Clear();
                }

                segments[written++] = turn.Messages;
            }
            else
            {
                (foreign ??= []).Add(new ForeignTurn(turn.Dialect, turn.Messages, turn.Payload[turn.IdRange]));
            }
        }

        if (foreign is { Count: > 0 })
        {
            segments[written++] = converter.Convert(target, foreign);
        }

        count = written;
        return segments;
    }

    /// <summary>Gives back the rented arrays; the window and its segments are not used after this.</summary>
    public void Return(ReadOnlyMemory<byte>[] segments)
    {
        // Cleared: they hold references to the stored turns' payloads, which should not outlive the request.
        if (segments.Length > 0)
        {
            ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(segments, clearArray: true);
        }

        if (Turns is { Length: > 0 } turns)
        {
            ArrayPool<StoredTurn>.Shared.Return(turns, clearArray: true);
        }
    }

    private static bool Take(in StoredTurn turn, StoredTurn[] chosen, ref int count, ref Budget budget)
    {
        var bytes = turn.MessagesRange.GetOffsetAndLength(turn.Payload.Length).Length;
        if ((budget.MaxTokens > 0 && budget.Tokens + turn.Tokens > budget.MaxTokens)
            || (budget.MaxBytes > 0 && budget.Bytes + bytes > budget.MaxBytes))
        {
            return false;
        }

        budget.Tokens += turn.Tokens;
        budget.Bytes += bytes;
        chosen[count++] = turn;
        return true;
    }

    /// <summary>What the chosen turns use of the limits (0 = no limit).</summary>
    private struct Budget(int maxTokens, long maxBytes)
    {
        public readonly int MaxTokens = maxTokens;
        public readonly long MaxBytes = maxBytes;
        public long Tokens;
        public long Bytes;
    }

    private static ContextWindow Finish(StoredTurn[] chosen, int count)
    {
        // Collected newest first, so the oldest is last: while it is a tool result whose call was left out, it goes too
        // (a multi-step tool loop whose first turn is out loses every step it had in the window).
        while (count > 0 && chosen[count - 1].ContinuesToolExchange)
        {
            count--;
        }

        // The splice wants oldest first.
        Array.Reverse(chosen, 0, count);
        return new ContextWindow(chosen, count);
    }

    /// <summary>The oldest <paramref name="count"/> of the chosen turns, on the same rented array (return only one of the two).</summary>
    public ContextWindow Oldest(int count) => new(Turns, Math.Clamp(count, 0, Count));

    /// <summary>The chosen turns, oldest first.</summary>
    public ReadOnlySpan<StoredTurn> Chosen => Turns is null ? [] : Turns.AsSpan(0, Count);

    private static bool Contains(StoredTurn[] stored, ReadOnlySpan<byte> id)
    {
        foreach (var turn in stored)
        {
            if (turn.Id.SequenceEqual(id))
            {
                return true;
            }
        }

        return false;
    }
}
