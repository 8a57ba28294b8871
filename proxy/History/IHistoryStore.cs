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

    /// <summary>Appends one turn, trims and refreshes expiry in one round trip; a turn id already stored is not added again.</summary>
    ValueTask<AppendResult> AppendAsync(Turn turn, CancellationToken cancellationToken);

    /// <summary>Whether the store can serve requests now, for readiness.</summary>
    ValueTask<StoreStatus> CheckAsync(CancellationToken cancellationToken);
}

internal enum AppendResult
{
    Written,
    Duplicate,
}

/// <summary>Readiness of the store; <see cref="Detail"/> is safe to show (no connection string).</summary>
internal readonly record struct StoreStatus(bool Ready, string Detail);
