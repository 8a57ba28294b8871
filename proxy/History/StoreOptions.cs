namespace Mnemo.Proxy.History;

/// <summary>How much of a session the store keeps, and for how long (<c>Mnemo:Memory</c>, shared with the context options).</summary>
public sealed record StoreOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Memory";

    /// <summary>Largest accepted <see cref="MaxStoredTurns"/>.</summary>
    public const int StoredTurnsLimit = 10_000;

    /// <summary>A session's list is trimmed to this many turns on every write.</summary>
    public int MaxStoredTurns { get; init; } = 100;

    /// <summary>Sliding expiry of a session, refreshed by every read and write.</summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromDays(1);
}
