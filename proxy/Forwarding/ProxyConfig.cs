using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Mnemo.Proxy.Forwarding;

/// <summary>YARP's routes and clusters: from a <c>ReverseProxy</c> section when present, else one catch-all route to <c>Mnemo:Upstream</c>.</summary>
internal static class ProxyConfig
{
    public const string ReverseProxySection = "ReverseProxy";
    public const string RouteId = "mnemo";
    public const string ClusterId = "upstream";

    public static IReverseProxyBuilder AddMnemoProxyConfig(this IReverseProxyBuilder builder, IConfiguration configuration)
    {
        var section = configuration.GetSection(ReverseProxySection);
        if (section.Exists())
        {
            return builder.LoadFromConfig(section);
        }

        var options = configuration.GetSection(ForwardingOptions.SectionName).Get<ForwardingOptions>() ?? new ForwardingOptions();
        return builder.LoadFromMemory([Route()], [Cluster(options)]);
    }

    private static RouteConfig Route() => new()
    {
        RouteId = RouteId,
        ClusterId = ClusterId,
        Match = new RouteMatch { Path = "{**catch-all}" },
        // A sidecar in front of a third-party API should not announce the pod's addresses to it.
        Transforms = [new Dictionary<string, string> { ["X-Forwarded"] = "Off" }],
    };

    private static ClusterConfig Cluster(ForwardingOptions options) => new()
    {
        ClusterId = ClusterId,
        Destinations = new Dictionary<string, DestinationConfig>
        {
            ["upstream"] = new() { Address = options.Upstream },
        },
        HttpRequest = new ForwarderRequestConfig
        {
            ActivityTimeout = options.UpstreamTimeout,
            AllowResponseBuffering = false,
        },
    };
}
