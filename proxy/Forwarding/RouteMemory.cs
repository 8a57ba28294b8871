using System.Runtime.CompilerServices;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Metrics;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Mnemo.Proxy.Forwarding;

/// <summary>
/// A route's memory settings from its metadata: <c>Mnemo.Dialect</c> (a dialect label, or <c>none</c> for no memory)
/// and <c>Mnemo.Mode</c> (inject, auto, record, off). Parsed and validated once per route when YARP loads its configuration:
/// an unknown value fails the configuration, naming the route, instead of silently passing requests through.
/// </summary>
internal sealed class RouteMemory : ITransformProvider
{
    /// <summary>Route metadata key naming a route's dialect (<c>none</c> turns memory off for the route).</summary>
    public const string DialectMetadata = "Mnemo.Dialect";

    /// <summary>Route metadata setting a route's default memory mode.</summary>
    public const string ModeMetadata = "Mnemo.Mode";

    private static readonly ConditionalWeakTable<RouteConfig, Settings> s_routes = [];

    /// <summary>What the route of <paramref name="context"/> says; null when it says nothing (dialect by path, configured mode).</summary>
    public static Settings? For(HttpContext context) =>
        context.Features.Get<IReverseProxyFeature>()?.Route.Config is { } route && s_routes.TryGetValue(route, out var settings) ? settings : null;

    public void ValidateRoute(TransformRouteValidationContext context)
    {
        if (Parse(context.Route, out var error) is null && error is not null)
        {
            context.Errors.Add(new ArgumentException(error));
        }
    }

    public void ValidateCluster(TransformClusterValidationContext context)
    {
    }

    public void Apply(TransformBuilderContext context)
    {
        if (context.Route is { } route && Parse(route, out _) is { } settings)
        {
            s_routes.AddOrUpdate(route, settings);
        }
    }

    private static Settings? Parse(RouteConfig route, out string? error)
    {
        error = null;
        var metadata = route.Metadata;
        if (metadata is null)
        {
            return null;
        }

        var hasDialect = metadata.TryGetValue(DialectMetadata, out var dialectLabel);
        var hasMode = metadata.TryGetValue(ModeMetadata, out var modeLabel);
        if (!hasDialect && !hasMode)
        {
            return null;
        }

        DialectId? dialect = null;
        if (hasDialect)
        {
            if (string.Equals(dialectLabel, "none", StringComparison.OrdinalIgnoreCase))
            {
                dialect = DialectId.Other;
            }
            else if (DialectLabels.TryParse(dialectLabel, out var id))
            {
                dialect = id;
            }
            else
            {
                error = $"Route '{route.RouteId}': metadata {DialectMetadata} must be one of openai-chat, anthropic-messages, openai-responses, ollama-chat or none.";
                return null;
            }
        }

        MemoryMode? mode = null;
        if (hasMode)
        {
            if (!MemoryModes.TryParse(modeLabel, out MemoryMode parsed))
            {
                error = $"Route '{route.RouteId}': metadata {ModeMetadata} must be one of inject, auto, record or off.";
                return null;
            }

            mode = parsed;
        }

        return new Settings(dialect, mode);
    }

    /// <summary>A route's parsed settings: <see cref="DialectId.Other"/> means memory is off for the route.</summary>
    internal sealed record Settings(DialectId? Dialect, MemoryMode? Mode);
}
