using System.Diagnostics;
using System.Globalization;
using Mnemo.Proxy.Metrics;
using Yarp.ReverseProxy.Forwarder;

namespace Mnemo.Proxy.Forwarding;

/// <summary>What one exchange reports: the <c>X-Mnemo-*</c> response headers, and its metrics once the response has completed.</summary>
internal sealed class ExchangeTelemetry(MnemoMetrics metrics)
{
    public const string MemoryHeader = "X-Mnemo-Memory";
    public const string ContextTurnsHeader = "X-Mnemo-Context-Turns";

    private static readonly string[] s_turnCounts = Enumerable.Range(0, 101).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();

    public static readonly Func<object, Task> WriteHeaders = static state =>
    {
        var exchange = (Exchange)state;
        var headers = exchange.Context.Response.Headers;
        headers[MemoryHeader] = MnemoMetrics.Label(exchange.Memory);
        var turns = exchange.ContextTurns;
        headers[ContextTurnsHeader] = turns < s_turnCounts.Length ? s_turnCounts[turns] : turns.ToString(CultureInfo.InvariantCulture);
        return Task.CompletedTask;
    };

    public void Observe(Exchange exchange, long now)
    {
        var dialect = exchange.DialectId;
        var outcome = Classify(exchange);
        metrics.Request(dialect, exchange.Memory, outcome);
        if (outcome == Outcome.Completed && exchange.NotStored is { } reason)
        {
            metrics.NotStored(reason);
        }

        if (exchange.Parser is { } parser)
        {
            metrics.Tokens(dialect, parser.Usage.Input, parser.Usage.Output);
        }

        var forwarded = exchange.ForwardStarted;
        if (forwarded == 0)
        {
            return;
        }

        if (exchange.UpstreamHeaders != 0)
        {
            metrics.Stage(Stage.UpstreamHeaders, dialect, Seconds(forwarded, exchange.UpstreamHeaders));
        }

        if (exchange.UpstreamFirstByte != 0)
        {
            metrics.Stage(Stage.UpstreamFirstByte, dialect, Seconds(forwarded, exchange.UpstreamFirstByte));
        }

        if (exchange.UpstreamEnded != 0)
        {
            var upstream = Seconds(forwarded, exchange.UpstreamEnded);
            metrics.Stage(Stage.UpstreamTotal, dialect, upstream);
            metrics.Overhead(dialect, Seconds(exchange.Started, now) - upstream);
        }
    }

    private static Outcome Classify(Exchange exchange)
    {
        if (exchange.Rejected)
        {
            return Outcome.Rejected;
        }

        if (exchange.Context.Features.Get<IForwarderErrorFeature>()?.Error is { } error and not ForwarderError.None)
        {
            return IsClientSide(error) ? Outcome.ClientAborted : Outcome.UpstreamError;
        }

        if (exchange.ForwardStarted == 0)
        {
            // Never forwarded and not rejected: the client left while its body was uploading.
            return Outcome.ClientAborted;
        }

        if (exchange.UpstreamStatus is 0 or >= 400)
        {
            return Outcome.UpstreamError;
        }

        // A success status whose answer broke off or ended in an error event. An answer that is complete but not stored
        // by rule (too large, nothing new to remember) is a completed request, counted in mnemo_turns_not_stored_total.
        if (exchange.Record && exchange.Turn is null && exchange.NotStored is null
            && exchange.Parser is { } parser && (!parser.Completed || parser.Failure is not null))
        {
            return Outcome.UpstreamError;
        }

        return Outcome.Completed;
    }

    /// <summary>YARP reported an error: the client went away, or the upstream broke, mid-request or mid-response.</summary>
    public static bool Failed(Exchange exchange) =>
        exchange.Context.Features.Get<IForwarderErrorFeature>()?.Error is { } error and not ForwarderError.None;

    private static bool IsClientSide(ForwarderError error) => error is
        ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.RequestBodyClient
        or ForwarderError.ResponseBodyCanceled or ForwarderError.ResponseBodyClient
        or ForwarderError.UpgradeRequestCanceled or ForwarderError.UpgradeRequestClient
        or ForwarderError.UpgradeResponseCanceled or ForwarderError.UpgradeResponseClient;

    private static double Seconds(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalSeconds;
}
