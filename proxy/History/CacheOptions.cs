namespace Mnemo.Proxy.History;

/// <summary>The session cache (<c>Mnemo:Cache</c>): warm sessions served from this replica's memory, see <see cref="SessionCache"/>.</summary>
public sealed record CacheOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Cache";

    /// <summary>On by default with Redis; the embedded store is in memory already and has no cache.</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>
    /// Bytes of session windows held (the stored turns' bytes plus a small overhead each); past it the least recently
    /// used sessions go.
    /// </summary>
    public long SizeLimit { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// How long a session stays cached after it was last read from Redis or written by this replica (never longer than
    /// <c>Mnemo:Memory:Ttl</c>, so an entry never outlives its keys).
    /// </summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromMinutes(5);
}
