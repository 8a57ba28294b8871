namespace Mnemo.Proxy.Forwarding;

/// <summary>The upstream Mnemo forwards to (keys directly under <c>Mnemo</c>).</summary>
public sealed record ForwardingOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo";

    /// <summary>
    /// Base address of the one upstream; generates a catch-all route. Ignored when a <c>ReverseProxy</c> section
    /// configures routes and clusters instead.
    /// </summary>
    public string Upstream { get; init; } = "https://api.openai.com";

    /// <summary>
    /// How long the upstream may stay silent (before the first byte or between chunks) before the request fails.
    /// Reasoning models can think for minutes before their first token, hence far above YARP's 100 s default.
    /// </summary>
    public TimeSpan UpstreamTimeout { get; init; } = TimeSpan.FromMinutes(10);
}
