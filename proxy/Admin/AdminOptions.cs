namespace Mnemo.Proxy.Admin;

/// <summary>The admin API (<c>Mnemo:Admin</c>): off unless a token is configured.</summary>
public sealed record AdminOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Admin";

    /// <summary>Bearer token for <c>/admin/v1/*</c> on the management port; empty turns the admin API off.</summary>
    public string? Token { get; init; }

    /// <summary>
    /// How long an erased session's tombstone refuses the turns answered before the erasure (queued or retried on any
    /// replica). Turns waiting longer than this in a replica's write-back queue are let go rather than written.
    /// </summary>
    public TimeSpan TombstoneTtl { get; init; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How far replicas' clocks may run ahead of Redis's: the tombstone also refuses turns stamped up to this much after
    /// the erasure, so a fast clock cannot slip an earlier turn past it.
    /// </summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Most sessions a listing page holds.</summary>
    public int MaxPageSize { get; init; } = 1000;

    public bool Enabled => !string.IsNullOrEmpty(Token);
}

/// <summary>Optional prices per model (<c>Mnemo:Pricing</c>), to show a session's cost in its export.</summary>
public sealed record PricingOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Pricing";

    /// <summary>Shown with the cost; the prices are in it.</summary>
    public string Currency { get; init; } = "USD";

    /// <summary>Prices per model; a model that matches none has no cost in the export.</summary>
    public IList<ModelPrice> Models { get; init; } = [];
}

/// <summary>
/// Prices of one model per million tokens. <see cref="Model"/> is matched exactly, or as a prefix when it ends with
/// <c>*</c>. Cache reads and writes cost the input price unless they have their own.
/// </summary>
public sealed record ModelPrice
{
    public string Model { get; init; } = "";

    public decimal Input { get; init; }

    public decimal Output { get; init; }

    public decimal? CacheRead { get; init; }

    public decimal? CacheWrite { get; init; }
}
