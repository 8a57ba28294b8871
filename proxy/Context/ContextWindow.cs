using System.Buffers;
using Mnemo.Proxy.Conversation;
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
    private ContextWindow(StoredTurn[] turns, int count, long nextPosition, Turn? newestPending)
    {
        Turns = turns;
        Count = count;
        NextPosition = nextPosition;
        NewestPending = newestPending;
    }

    /// <summary>The chosen turns, oldest first; only the first <see cref="Count"/> are used (the array is rented, maybe longer).</summary>
    public StoredTurn[] Turns { get; }

    public int Count { get; }

    /// <summary>
    /// Where the session's newest known turn ends, in tokens (its <see cref="StoredTurn.Position"/> plus its tokens, plus
    /// the estimates of newer turns not yet counted): the position of the turn this request will store. -1 when nothing was read.
    /// </summary>
    public long NextPosition { get; }

    /// <summary>The session's newest turn when it is not written yet: the writer takes its position once it has counted it.</summary>
    public Turn? NewestPending { get; }

    /// <summary>
    /// Chooses the newest turns that fit <see cref="MemoryOptions.MaxContextTurns"/>, <see cref="MemoryOptions.MaxContextTokens"/>
    /// (less <paramref name="reservedTokens"/>, kept for what is injected besides the turns, such as a summary)
    /// and <see cref="MemoryOptions.MaxContextBytes"/>
    /// from what the store returned plus this replica's turns not yet written (read-your-writes), then leaves out the
    /// oldest while it continues a tool exchange whose start is not in the window.
    /// </summary>
    /// <remarks>
    /// <para>
    /// A tool result whose call was left out (by the limits, or trimmed from the store) is rejected by the provider, and
    /// a failed request stores nothing: the session would fail on every request. The window is never widened to take
    /// the call back in: the limits are the operator's. Only the oldest boundary can cut an exchange, the chosen turns
    /// being the newest in a row; a call in the newest turn is answered by the client's own new tool results.
    /// </para>
    /// <para>
    /// Block eviction, with a token budget B and <paramref name="evictionFraction"/> f below 1: the window's start is
    /// snapped to a grid of the session's running token position (<see cref="StoredTurn.Position"/>, stored with each
    /// turn by the writer) with a step of (1 - f)·B. With E the position where the newest turn ends, the window holds the
    /// turns that start at or after S = ceil((E - B) / step)·step. S stays put while E grows by a step, so for that long
    /// every request's injected history is the previous one's plus the newest turn (a byte-prefix, which keeps provider
    /// prompt caches warm); when E crosses the next grid point, a block of about (1 - f)·B tokens of old turns leaves at
    /// once and the window is back to about f·B. No state is kept between requests: every replica computes the same S.
    /// f = 1 slides one turn at a time (the newest that fit). The greedy fit still bounds the window, so positions that are
    /// off (a turn written by an older version, concurrent requests of one session) can shift a block, never the budget.
    /// Turns not yet counted (pending, read-your-writes) weigh their estimate and have no position: they are the newest,
    /// and are kept when they fit.
    /// </para>
    /// </remarks>
    public static ContextWindow Choose(
        StoredTurn[] stored, Turn[] pending, int maxTurns, int maxTokens, long maxBytes = 0, double evictionFraction = 1.0, int reservedTokens = 0)
    {
        var tokenBudget = maxTokens > 0 ? Math.Max(0, maxTokens - reservedTokens) : 0;
        var total = stored.Length + pending.Length;
        var (nextPosition, newestPending) = Next(stored, pending);
        if (total == 0 || maxTurns == 0 || (maxTokens > 0 && tokenBudget == 0))
        {
            return new ContextWindow([], 0, nextPosition, newestPending);
        }

        var budget = new Budget(tokenBudget, maxBytes);

        // Newest first: pending turns are newer than anything stored, unless the write already landed.
        var limit = Math.Min(total, maxTurns);
        var chosen = ArrayPool<StoredTurn>.Shared.Rent(limit);
        var count = 0;
        var full = false;
        for (var i = pending.Length - 1; i >= 0 && count < limit; i--)
        {
            if (!Contains(stored, pending[i].View) && !Take(pending[i].View, chosen, ref count, ref budget))
            {
                full = true;
                break;
            }
        }

        for (var i = stored.Length - 1; !full && i >= 0 && count < limit; i--)
        {
            if (!Take(stored[i], chosen, ref count, ref budget))
            {
                break;
            }
        }

        if (tokenBudget > 0 && evictionFraction < 1 && nextPosition > tokenBudget)
        {
            count = Snap(chosen, count, nextPosition, tokenBudget, evictionFraction);
        }

        return Finish(chosen, count, nextPosition, newestPending);
    }

    /// <summary>Leaves out the chosen turns (newest first) that start before the block boundary; see <see cref="Choose"/>.</summary>
    private static int Snap(StoredTurn[] chosen, int count, long end, int budget, double fraction)
    {
        var step = Math.Max(1L, (long)(budget * (1 - fraction)));
        var start = (end - budget + step - 1) / step * step;
        for (var i = 0; i < count; i++)
        {
            if (chosen[i].Position >= 0 && chosen[i].Position < start)
            {
                return i;
            }
        }

        return count;
    }

    /// <summary>
    /// The position the next turn of the session starts at: the newest counted turn's end plus the estimates of the
    /// newer ones; the sum of what was read when no turn has a position (turns stored before positions existed).
    /// </summary>
    public static (long Position, Turn? NewestPending) Next(StoredTurn[] stored, Turn[] pending)
    {
        Turn? newestPending = null;
        long after = 0;
        for (var i = pending.Length - 1; i >= 0; i--)
        {
            var view = pending[i].View;
            if (Contains(stored, view))
            {
                continue;
            }

            newestPending ??= pending[i];
            if (view.Position >= 0)
            {
                return (view.Position + view.Tokens + after, newestPending);
            }

            after += view.Tokens;
        }

        for (var i = stored.Length - 1; i >= 0; i--)
        {
            if (stored[i].Position >= 0)
            {
                return (stored[i].Position + stored[i].Tokens + after, newestPending);
            }

            after += stored[i].Tokens;
        }

        return (stored.Length + pending.Length == 0 ? 0 : after, newestPending);
    }

    /// <summary>
    /// The messages of the chosen turns in <paramref name="target"/>'s format: a turn of the same dialect is its stored
    /// bytes, untouched; each run of turns stored by other dialects is converted as one segment. The segments are the
    /// first <paramref name="count"/> of a rented array: give it back with <see cref="Return"/>. <paramref name="shapes"/>
    /// holds each segment's tool shape in the target's ids (see <see cref="ValidHistory"/>), or is empty when no chosen
    /// turn has a tool call, result or item id.
    /// </summary>
    public ReadOnlyMemory<byte>[] Segments(Dialect target, Converter converter, out int count, out TurnShape[] shapes)
    {
        count = 0;
        shapes = [];
        if (Count == 0)
        {
            return [];
        }

        var segments = ArrayPool<ReadOnlyMemory<byte>>.Shared.Rent(Count);
        var tools = false;
        for (var i = 0; i < Count && !tools; i++)
        {
            tools = Turns[i].Shape is not { HasTools: false };
        }

        if (tools)
        {
            shapes = new TurnShape[Count];
        }

        var written = 0;
        List<ForeignTurn>? foreign = null;
        for (var i = 0; i < Count; i++)
        {
            ref readonly var turn = ref Turns[i];
            if (turn.Dialect == target.Id)
            {
                if (foreign is { Count: > 0 })
                {
                    Foreign(target, converter, foreign, segments, shapes, ref written);
                }

                if (tools)
                {
                    // An element stored before shapes were kept has its shape worked out here, from its messages.
                    shapes[written] = turn.Shape ?? Pairing.Shape(target, turn.Messages.Span);
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
            Foreign(target, converter, foreign, segments, shapes, ref written);
        }

        count = written;
        return segments;
    }

    private static void Foreign(Dialect target, Converter converter, List<ForeignTurn> foreign, ReadOnlyMemory<byte>[] segments, TurnShape[] shapes, ref int written)
    {
        var bytes = converter.Convert(target, foreign, out var shape);
        if (shapes.Length > 0)
        {
            shapes[written] = shape;
        }

        segments[written++] = bytes;
        foreign.Clear();
    }

    /// <summary>Whether a chosen turn may leave a tool call open (so the request's own first items are needed to pair it).</summary>
    public bool MayEndOpen
    {
        get
        {
            for (var i = 0; i < Count; i++)
            {
                if (Turns[i].Shape is not { } shape || shape.Open.Length > 0)
                {
                    return true;
                }
            }

            return false;
        }
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

    private static ContextWindow Finish(StoredTurn[] chosen, int count, long nextPosition, Turn? newestPending)
    {
        // Collected newest first, so the oldest is last: while it is a tool result whose call was left out, it goes too
        // (a multi-step tool loop whose first turn is out loses every step it had in the window).
        while (count > 0 && chosen[count - 1].ContinuesToolExchange)
        {
            count--;
        }

        // The splice wants oldest first.
        Array.Reverse(chosen, 0, count);
        return new ContextWindow(chosen, count, nextPosition, newestPending);
    }

    /// <summary>The oldest <paramref name="count"/> of the chosen turns, on the same rented array (return only one of the two).</summary>
    public ContextWindow Oldest(int count) => new(Turns, Math.Clamp(count, 0, Count), NextPosition, NewestPending);

    /// <summary>The chosen turns, oldest first.</summary>
    public ReadOnlySpan<StoredTurn> Chosen => Turns is null ? [] : Turns.AsSpan(0, Count);

    private static bool Contains(StoredTurn[] stored, in StoredTurn turn)
    {
        for (var i = 0; i < stored.Length; i++)
        {
            if (stored[i].SameId(turn))
            {
                return true;
            }
        }

        return false;
    }
}
