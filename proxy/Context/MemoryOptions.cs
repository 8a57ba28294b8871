namespace Mnemo.Proxy.Context;

/// <summary>What Mnemo remembers and how much of it goes back to the model (<c>Mnemo:Memory</c>).</summary>
public sealed record MemoryOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Memory";

    /// <summary>Largest accepted <see cref="MaxStoredTurns"/>: the dedupe ids of that many turns live in one hash field.</summary>
    public const int StoredTurnsLimit = 10_000;

    /// <summary>Default mode for requests carrying a session header. A request may override it with <c>X-Mnemo-Mode</c>.</summary>
    public MemoryMode Mode { get; init; } = MemoryMode.Inject;

    /// <summary>A session's list is trimmed to this many turns on every write.</summary>
    public int MaxStoredTurns { get; init; } = 100;

    /// <summary>At most this many of the newest turns are spliced into a request (never more than are stored).</summary>
    public int MaxContextTurns { get; init; } = 20;

    /// <summary>Token budget for spliced history; 0 turns the budget off.</summary>
    public int MaxContextTokens { get; init; }

    /// <summary>Sliding expiry of a session, refreshed by every read and write.</summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromDays(1);
}

/// <summary>What Mnemo does for a request that carries a session header.</summary>
public enum MemoryMode
{
    /// <summary>The client sends only new messages; stored history is spliced in and the new turn stored.</summary>
    Inject,

    /// <summary>The client sends its full history; nothing is spliced, the new turn is stored.</summary>
    Record,

    /// <summary>Plain proxying: nothing read, nothing stored.</summary>
    Off,
}
