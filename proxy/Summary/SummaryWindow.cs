using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Summary;

/// <summary>
/// The request path's part of the rolling summary: which read turns the window may take (those the summary does not
/// cover), how much of the token budget the summary uses, the summary in the request's instruction form, and whether
/// enough turns are outside the window for a summary run. No Redis call and no tokenizing: everything comes with the read.
/// </summary>
internal static class SummaryWindow
{
    /// <summary>The read turns the summary does not cover (a summary never repeats in the history), oldest first.</summary>
    public static StoredTurn[] Uncovered(in ReadResult read)
    {
        var turns = read.Turns ?? [];
        if (read.Summary is not { } summary)
        {
            return turns;
        }

        var index = summary.IndexIn(turns);
        return index < 0 ? turns : turns[(index + 1)..];
    }

    /// <summary>
    /// How many turns the summary does not cover are older than the window: those never read (past the covered ones),
    /// and those read but not chosen.
    /// </summary>
    public static long Outside(in ReadResult read, StoredTurn[] uncovered, in ContextWindow window)
    {
        var unread = Math.Max(0, read.Length - (read.Turns?.Length ?? 0) - read.Covered);
        var chosen = window.Chosen;
        var notChosen = uncovered.Length;
        if (chosen.Length > 0)
        {
            var oldest = chosen[0].Id;
            for (var i = 0; i < uncovered.Length; i++)
            {
                if (uncovered[i].Id.SequenceEqual(oldest))
                {
                    notChosen = i;
                    break;
                }
            }
        }

        return unread + notChosen;
    }

    /// <summary>
    /// The segments to splice: the summary as a message first when the request's dialect takes it so, then the turns'.
    /// Returns <paramref name="segments"/> itself when there is no such message. <paramref name="instructions"/> is the
    /// summary text when it goes elsewhere in the body (<see cref="SplicePlan.InstructionsAsMessage"/> false).
    /// </summary>
    public static ReadOnlyMemory<byte>[] Inject(
        in ReadResult read, Dialect dialect, SplicePlan plan, ReadOnlyMemory<byte>[] segments, ref int count, out ReadOnlyMemory<byte> instructions)
    {
        instructions = default;
        if (read.Summary is not { Text.Length: > 0 } summary)
        {
            return segments;
        }

        if (!plan.InstructionsAsMessage)
        {
            instructions = summary.Text;
            return segments;
        }

        var open = dialect.SummaryMessageOpen;
        var close = dialect.SummaryMessageClose;
        var message = new byte[open.Length + summary.Text.Length + close.Length];
        open.CopyTo(message);
        summary.Text.CopyTo(message.AsSpan(open.Length));
        close.CopyTo(message.AsSpan(open.Length + summary.Text.Length));
        var all = new ReadOnlyMemory<byte>[count + 1];
        all[0] = message;
        segments.AsSpan(0, count).CopyTo(all.AsSpan(1));
        count++;
        return all;
    }
}
