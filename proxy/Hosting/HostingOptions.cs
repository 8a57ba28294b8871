namespace Mnemo.Proxy.Hosting;

/// <summary>Process-level settings (keys directly under <c>Mnemo</c>).</summary>
public sealed record HostingOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo";

    /// <summary>
    /// On SIGTERM: time for in-flight streams to finish and for queued turns to be written. Keep the pod's
    /// <c>terminationGracePeriodSeconds</c> above this plus any preStop delay.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);
}
