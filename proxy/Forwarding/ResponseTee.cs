using System.Diagnostics;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Mnemo.Proxy.Forwarding;

/// <summary>
/// A response transform on every route: timestamps the upstream's headers and swaps the response content for a
/// <see cref="TeeContent"/> (the YARP maintainers' recommended way to observe a body without taking over the copy).
/// </summary>
internal sealed class ResponseTee : ITransformProvider
{
    public void ValidateRoute(TransformRouteValidationContext context)
    {
    }

    public void ValidateCluster(TransformClusterValidationContext context)
    {
    }

    public void Apply(TransformBuilderContext context) => context.AddResponseTransform(static transform =>
    {
        Tee(transform);
        return default;
    });

    private static void Tee(ResponseTransformContext transform)
    {
        var response = transform.ProxyResponse;
        if (response is null || transform.HttpContext.Features.Get<Exchange>() is not { } exchange)
        {
            return;
        }

        exchange.UpstreamHeaders = Stopwatch.GetTimestamp();
        exchange.UpstreamStatus = (int)response.StatusCode;
        exchange.UpstreamLength = response.Content.Headers.ContentLength ?? -1;

        if (exchange.Record && response.IsSuccessStatusCode)
        {
            // Upstreams are asked for identity encoding when recording; one that compresses anyway is still proxied.
            var encodings = response.Content.Headers.ContentEncoding;
            if (encodings.Count > 0 && !(encodings.Count == 1 && encodings.Contains("identity")))
            {
                exchange.NotRecordable = "response is content-encoded";
            }
            else
            {
                exchange.Parser = exchange.Dialect!.CreateResponseParser(response.Content.Headers.ContentType?.MediaType);
                if (exchange.Parser is { } parser)
                {
                    parser.Limit = exchange.AnswerLimit;
                }
                exchange.NotRecordable = exchange.Parser is null ? "response media type is not one the dialect reads" : null;
            }
        }

        response.Content = new TeeContent(response.Content, exchange, exchange.Parser);
    }
}
