using System.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Forwarding;

/// <summary>
/// Counts requests Kestrel refuses before Mnemo sees them (a malformed request line or header, headers over the size
/// limit, CR or LF in a header value): <c>mnemo_requests_total{dialect="other",memory="off",outcome="rejected"}</c>.
/// Without it an attack of malformed requests would not show in Mnemo's metrics at all.
/// </summary>
/// <remarks>Kestrel reports them on the host's <see cref="DiagnosticListener"/> as its <c>BadRequest</c> event.</remarks>
internal sealed class KestrelRejects(MnemoMetrics metrics) : IObserver<KeyValuePair<string, object?>>
{
    private const string BadRequestEvent = "Microsoft.AspNetCore.Server.Kestrel.BadRequest";

    public static IDisposable Subscribe(DiagnosticListener listener, MnemoMetrics metrics) =>
        listener.Subscribe(new KestrelRejects(metrics), static (name, _, _) => name == BadRequestEvent);

    public void OnNext(KeyValuePair<string, object?> value)
    {
        // A request that reached Mnemo (a body Kestrel refused mid-read) is counted once, by the exchange itself.
        if (value.Key == BadRequestEvent && value.Value is IFeatureCollection features && features.Get<Exchange>() is null)
        {
            metrics.Request(DialectId.Other, MemoryState.Off, Outcome.Rejected);
        }
    }

    public void OnCompleted()
    {
    }

    public void OnError(Exception error)
    {
    }
}
