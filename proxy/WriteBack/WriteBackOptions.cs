namespace Mnemo.Proxy.WriteBack;

/// <summary>The background writer (<c>Mnemo:WriteBack</c>).</summary>
public sealed record WriteBackOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:WriteBack";

    /// <summary>
    /// Turns accepted and not yet written (queued, in flight or waiting for a retry); a turn that would exceed it is
    /// dropped and counted rather than blocking responses.
    /// </summary>
    public int QueueCapacity { get; init; } = 10_000;

    /// <summary>
    /// Bytes of those turns (their stored payloads), bounding the writer's memory however large the turns are; a turn that
    /// would exceed it is dropped and counted. 64 MiB by default.
    /// </summary>
    public long QueueBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Writes in flight at once (turns of one session are always written one after another, in order).</summary>
    public int MaxConcurrentWrites { get; init; } = 64;
}
