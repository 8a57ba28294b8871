using Yarp.ReverseProxy.Model;

namespace Mnemo.Proxy.Dialects;

/// <summary>Picks the dialect of a request: the route's <c>Mnemo.Dialect</c> metadata if set, else the request path.</summary>
internal sealed class DialectRegistry
{
    /// <summary>Route metadata key naming a route's dialect (<c>none</c> turns memory off for the route).</summary>
    public const string DialectMetadata = "Mnemo.Dialect";

    private readonly Dialect[] _byId = new Dialect[DialectLabels.Count];
    private readonly Dialect[] _all;

    public DialectRegistry()
    {
        _all = [new OpenAIChatDialect()];
        foreach (var dialect in _all)
        {
            _byId[(int)dialect.Id] = dialect;
        }
    }

    public Dialect? Resolve(HttpContext context)
    {
        var metadata = context.Features.Get<IReverseProxyFeature>()?.Route.Config.Metadata;
        if (metadata is not null && metadata.TryGetValue(DialectMetadata, out var label))
        {
            return DialectLabels.TryParse(label, out var id) && HttpMethods.IsPost(context.Request.Method) ? _byId[(int)id] : null;
        }

        foreach (var dialect in _all)
        {
            if (dialect.Matches(context.Request))
            {
                return dialect;
            }
        }

        return null;
    }
}
