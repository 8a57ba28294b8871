using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Context;

/// <summary>The turns chosen for one request, as ready-to-splice message bytes, oldest first.</summary>
internal readonly struct HistoryContext
{
    public HistoryContext(ReadOnlyMemory<byte>[] segments, int turns, int bytes)
    {
        Segments = segments;
        Turns = turns;
        Bytes = bytes;
    }

    public ReadOnlyMemory<byte>[] Segments { get; }

    public int Turns { get; }

    public int Bytes { get; }

    /// <summary>
    /// Chooses the newest turns that fit <see cref="MemoryOptions.MaxContextTurns"/> and <see cref="MemoryOptions.MaxContextTokens"/>
    /// from what the store returned plus this replica's turns not yet written (read-your-writes).
    /// </summary>
    public static HistoryContext Build(HistoryWindow window, Turn[] pending, int maxTurns, int maxTokens)
    {
        var stored = window.Turns;
        var total = stored.Length + pending.Length;
        if (total == 0 || maxTurns == 0)
        {
            return default;
        }

        // Newest first: pending turns are newer than anything stored, unless the write already landed.
        var chosen = new ReadOnlyMemory<byte>[Math.Min(total, maxTurns)];
        int count = 0, tokens = 0, bytes = 0;
        for (var i = pending.Length - 1; i >= 0 && count < chosen.Length; i--)
        {
            if (!Contains(stored, pending[i].View.Id) && !Take(pending[i].View, chosen, ref count, ref tokens, ref bytes, maxTokens))
            {
                return Finish(chosen, count, bytes);
            }
        }

        for (var i = stored.Length - 1; i >= 0 && count < chosen.Length; i--)
        {
            if (!Take(stored[i], chosen, ref count, ref tokens, ref bytes, maxTokens))
            {
                break;
            }
        }

        return Finish(chosen, count, bytes);
    }

    private static bool Take(in StoredTurn turn, ReadOnlyMemory<byte>[] chosen, ref int count, ref int tokens, ref int bytes, int maxTokens)
    {
        if (maxTokens > 0 && tokens + turn.Tokens > maxTokens)
        {
            return false;
        }

        tokens += turn.Tokens;
        var messages = turn.Messages;
        chosen[count++] = messages;
        bytes += messages.Length;
        return true;
    }

    private static HistoryContext Finish(ReadOnlyMemory<byte>[] chosen, int count, int bytes)
    {
        // Collected newest first; the splice wants oldest first.
        Array.Reverse(chosen, 0, count);
        return new HistoryContext(chosen, count, bytes);
    }

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

    /// <summary>Length of the body once history is spliced in.</summary>
    public int SplicedLength(int bodyLength, ChatRequest request)
    {
        var segments = NonEmpty();
        if (segments == 0)
        {
            return bodyLength;
        }

        var commas = segments - 1 + (request.CommaBefore ? 1 : 0) + (request.CommaAfter ? 1 : 0);
        return bodyLength + Bytes + commas;
    }

    /// <summary>Copies <paramref name="body"/> into <paramref name="destination"/> with the history inserted at the splice point.</summary>
    public int Splice(ReadOnlySpan<byte> body, ChatRequest request, Span<byte> destination)
    {
        var head = body[..request.InsertAt];
        head.CopyTo(destination);
        var written = head.Length;
        var first = true;
        for (var i = 0; i < Turns; i++)
        {
            var segment = Segments[i].Span;
            if (segment.IsEmpty)
            {
                continue;
            }

            if (!first || request.CommaBefore)
            {
                destination[written++] = (byte)',';
            }

            segment.CopyTo(destination[written..]);
            written += segment.Length;
            first = false;
        }

        if (!first && request.CommaAfter)
        {
            destination[written++] = (byte)',';
        }

        var tail = body[request.InsertAt..];
        tail.CopyTo(destination[written..]);
        return written + tail.Length;
    }

    private int NonEmpty()
    {
        var n = 0;
        for (var i = 0; i < Turns; i++)
        {
            if (!Segments[i].IsEmpty)
            {
                n++;
            }
        }

        return n;
    }
}
