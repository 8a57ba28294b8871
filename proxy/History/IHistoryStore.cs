using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.History;

/// <summary>Where turns live: Redis in production, or the embedded in-process store when no Redis is configured.</summary>
internal interface IHistoryStore
{
    /// <summary>Short name for readiness output and logs: <c>redis</c> or <c>embedded</c>.</summary>
    string Name { get; }

    /// <summary>
    /// Reads the newest <paramref name="count"/> turns (oldest first) and refreshes the session's expiry, in one round trip.
    /// </summary>
    ValueTask<StoredTurn[]> ReadAsync(SessionKey session, int count, CancellationToken cancellationToken);

    /// <summary>
    /// Like <see cref="ReadAsync"/>, and with the session's rolling summary, its list length and how many of the oldest
    /// turns the summary covers, in the same single round trip.
    /// </summary>
    ValueTask<HistoryRead> ReadWithSummaryAsync(SessionKey session, int count, CancellationToken cancellationToken);

    /// <summary>Appends one turn, trims and refreshes expiry in one round trip; a turn id already stored is not added again.</summary>
    ValueTask<AppendResult> AppendAsync(Turn turn, CancellationToken cancellationToken);

    /// <summary>
    /// Appends several turns of one session, oldest first, as <see cref="AppendAsync"/> would one after the other; a store
    /// that can does it in one round trip. The results are in the turns' order.
    /// </summary>
    async ValueTask<AppendResult[]> AppendManyAsync(IReadOnlyList<Turn> turns, CancellationToken cancellationToken)
    {
        var results = new AppendResult[turns.Count];
        for (var i = 0; i < turns.Count; i++)
        {
            results[i] = await AppendAsync(turns[i], cancellationToken).ConfigureAwait(false);
        }

        return results;
    }

    /// <summary>
    /// Stores <paramref name="summary"/> as covering the turns up to <paramref name="coveredId"/>, only if the summary
    /// stored now is still the one covering up to <paramref name="expectedCoveredId"/> (null: none): a compare-and-set,
    /// in one round trip, so a summary never replaces one written meanwhile.
    /// </summary>
    ValueTask<SummaryWrite> WriteSummaryAsync(
        SessionKey session, string? expectedCoveredId, string coveredId, byte[] summary, int tokens, CancellationToken cancellationToken);

    /// <summary>Everything stored for the session, or null when it has nothing. Does not refresh its expiry.</summary>
    ValueTask<SessionRecord?> ExportAsync(SessionKey session, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes every key of the session and leaves a tombstone that refuses the turns answered before now (see
    /// <see cref="Admin.AdminOptions.TombstoneTtl"/>). True when there was something to delete.
    /// </summary>
    ValueTask<bool> EraseAsync(SessionKey session, CancellationToken cancellationToken);

    /// <summary>A page of the tenant's sessions, from <paramref name="cursor"/> (null: the first page).</summary>
    /// <exception cref="FormatException">The cursor is not one this store returned.</exception>
    ValueTask<SessionPage> ListAsync(string tenant, string? cursor, int limit, CancellationToken cancellationToken);

    /// <summary>Erases every session of the tenant, as <see cref="EraseAsync"/> does one.</summary>
    ValueTask<EraseResult> EraseTenantAsync(string tenant, CancellationToken cancellationToken);

    /// <summary>Whether the store can serve requests now, for readiness.</summary>
    ValueTask<StoreStatus> CheckAsync(CancellationToken cancellationToken);
}

internal enum AppendResult
{
    Written,
    Duplicate,

    /// <summary>The session was erased after the turn was answered: not written.</summary>
    Erased,
}

internal enum SummaryWrite
{
    Written,

    /// <summary>Another summary was stored meanwhile, or the session is gone: nothing written.</summary>
    Superseded,
}

/// <summary>
/// The session's rolling summary as stored: its text as the content of a JSON string (escaped, without quotes, ready to
/// splice), the id of the newest turn it covers and its token estimate.
/// </summary>
internal sealed record StoredSummary(byte[] Text, string CoveredId, int Tokens)
{
    /// <summary>Index of the covered turn in <paramref name="turns"/> (oldest first), or -1 when it is not among them.</summary>
    public int IndexIn(ReadOnlySpan<StoredTurn> turns)
    {
        Span<byte> id = stackalloc byte[64];
        var length = System.Text.Encoding.ASCII.GetBytes(CoveredId.AsSpan(0, Math.Min(CoveredId.Length, 64)), id);
        for (var i = turns.Length - 1; i >= 0; i--)
        {
            if (turns[i].Id.SequenceEqual(id[..length]))
            {
                return i;
            }
        }

        return -1;
    }
}

/// <summary>
/// A read with the summary: the newest turns (oldest first), the summary (null when none), the list's whole length, how
/// many of its oldest turns the summary covers, and the session's generation (moved by every write; 0 when the store
/// keeps none, or the session has never been written).
/// </summary>
internal readonly record struct HistoryRead(StoredTurn[] Turns, StoredSummary? Summary, long Length, long Covered, long Generation = 0);

/// <summary>Readiness of the store; <see cref="Detail"/> is safe to show (no connection string).</summary>
internal readonly record struct StoreStatus(bool Ready, string Detail);
