namespace Mnemo.Proxy.WriteBack;

/// <summary>The background writer (<c>Mnemo:WriteBack</c>).</summary>
public sealed record WriteBackOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:WriteBack";

    /// <summary>Turns waiting to be written; when full, a new turn is dropped and counted rather than blocking responses.</summary>
    public int QueueCapacity { get; init; } = 10_000;

    /// <summary>Writes in flight at once (turns of one session are always written one after another, in order).</summary>
    public int MaxConcurrentWrites { get; init; } = 64;
}
