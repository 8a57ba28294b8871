using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.WriteBack;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Mnemo.Proxy.Forwarding;

/// <summary>
/// The YARP pipeline step. For a request of a known dialect with a session header it starts the history read,
/// reads the body meanwhile, splices the history in and forwards; once the answer has streamed through it holds the
/// new turn for the writer. Every other request passes through untouched, only timed.
/// </summary>
internal sealed class SessionMemoryMiddleware
{
    /// <summary>Per-request override of <see cref="MemoryOptions.Mode"/>; never forwarded.</summary>
    public const string ModeHeader = "X-Mnemo-Mode";

    /// <summary>Route metadata setting a route's default memory mode.</summary>
    public const string ModeMetadata = "Mnemo.Mode";

    public const string MemoryHeader = "X-Mnemo-Memory";
    public const string ContextTurnsHeader = "X-Mnemo-Context-Turns";

    private static readonly string[] s_turnCounts = Enumerable.Range(0, 101).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();

    private readonly RequestDelegate _next;
    private readonly DialectRegistry _dialects;
    private readonly SessionResolver _sessions;
    private readonly HistoryReader _history;
    private readonly WriteBackQueue _queue;
    private readonly MnemoMetrics _metrics;
    private readonly MemoryOptions _memory;
    private readonly int _contextTurns;
    private readonly TimeProvider _time;
    private readonly ILogger<SessionMemoryMiddleware> _logger;
    private readonly Func<object, Task> _onStarting = WriteHeaders;
    private readonly Func<object, Task> _onCompleted;

    public SessionMemoryMiddleware(
        RequestDelegate next,
        DialectRegistry dialects,
        SessionResolver sessions,
        HistoryReader history,
        WriteBackQueue queue,
        MnemoMetrics metrics,
        IOptions<MemoryOptions> memory,
        TimeProvider time,
        ILogger<SessionMemoryMiddleware> logger)
    {
        _next = next;
        _dialects = dialects;
        _sessions = sessions;
        _history = history;
        _queue = queue;
        _metrics = metrics;
        _memory = memory.Value;
        _contextTurns = Math.Min(_memory.MaxContextTurns, _memory.MaxStoredTurns);
        _time = time;
        _logger = logger;
        _onCompleted = Complete;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        var exchange = new Exchange(context, Stopwatch.GetTimestamp());
        context.Features.Set(exchange);
        context.Response.OnStarting(_onStarting, exchange);
        context.Response.OnCompleted(_onCompleted, exchange);

        var modeHeader = context.Request.Headers[ModeHeader];
        if (modeHeader.Count > 0)
        {
            context.Request.Headers.Remove(ModeHeader);
        }

        var dialect = _dialects.Resolve(context);
        if (dialect is null)
        {
            await ForwardAsync(exchange).ConfigureAwait(false);
            return;
        }

        exchange.DialectId = dialect.Id;
        exchange.Dialect = dialect;
        var session = _sessions.Resolve(context.Request);
        if (session.Status == SessionStatus.Absent)
        {
            await ForwardAsync(exchange).ConfigureAwait(false);
            return;
        }

        if (!TryGetMode(context, modeHeader, out var mode))
        {
            await RejectAsync(exchange, StatusCodes.Status400BadRequest, "invalid_mnemo_mode",
                $"The {ModeHeader} header must be one of: inject, record, off.").ConfigureAwait(false);
            return;
        }

        if (mode == MemoryMode.Off)
        {
            await ForwardAsync(exchange).ConfigureAwait(false);
            return;
        }

        if (session.Status == SessionStatus.Invalid)
        {
            await RejectAsync(exchange, StatusCodes.Status400BadRequest, session.ErrorCode!, session.ErrorMessage!).ConfigureAwait(false);
            return;
        }

        await RememberAsync(exchange, dialect, mode, session.Key!).ConfigureAwait(false);
    }

    private async Task RememberAsync(Exchange exchange, Dialect dialect, MemoryMode mode, SessionKey session)
    {
        var context = exchange.Context;
        var aborted = context.RequestAborted;
        exchange.Session = session;

        // The read is started first and runs while the body uploads: one round trip, overlapped.
        var inject = mode == MemoryMode.Inject && _contextTurns > 0;
        var pending = inject ? _queue.Pending.Snapshot(session) : [];
        var read = inject ? _history.ReadAsync(session, _contextTurns, aborted) : default;

        var body = exchange.Body = new PooledBuffer(InitialBodyCapacity(context.Request));
        var bodyError = await ReadBodyAsync(context.Request, body, aborted).ConfigureAwait(false);
        _metrics.Stage(Stage.BodyRead, dialect.Id, Stopwatch.GetElapsedTime(exchange.Started).TotalSeconds);
        var request = new ChatRequest();
        var parseError = bodyError is null ? dialect.ParseRequest(body.Span, mode, request) : null;

        HistoryRead history = default;
        if (inject)
        {
            try
            {
                history = await read.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (aborted.IsCancellationRequested)
            {
                return;
            }
        }

        if (bodyError is not null)
        {
            if (bodyError.StatusCode != 0)
            {
                await RejectAsync(exchange, bodyError.StatusCode, "request_body_rejected", bodyError.Message).ConfigureAwait(false);
            }

            return;
        }

        if (parseError is not null)
        {
            await RejectAsync(exchange, StatusCodes.Status400BadRequest, "invalid_request_body", parseError).ConfigureAwait(false);
            return;
        }

        var started = Stopwatch.GetTimestamp();
        HistoryContext window = default;
        if (inject)
        {
            _metrics.Stage(Stage.HistoryRead, dialect.Id, history.Elapsed.TotalSeconds);
            if (history.Degraded)
            {
                exchange.Memory = MemoryState.Degraded;
            }
            else
            {
                window = HistoryContext.Build(history.Window!, pending, _contextTurns, _memory.MaxContextTokens);
                exchange.Memory = window.Turns > 0 ? MemoryState.Hit : MemoryState.Empty;
                exchange.ContextTurns = window.Turns;
            }
        }

        var length = window.SplicedLength(body.Length, request);
        if (length != body.Length)
        {
            var spliced = exchange.SplicedBody = ArrayPool<byte>.Shared.Rent(length);
            window.Splice(body.Span, request, spliced);
            context.Request.Body = new MemoryStream(spliced, 0, length, writable: false);
        }
        else
        {
            context.Request.Body = body.AsStream();
        }

        if (inject && !history.Degraded)
        {
            _metrics.Stage(Stage.ContextBuild, dialect.Id, Stopwatch.GetElapsedTime(started).TotalSeconds);
        }

        context.Request.ContentLength = length;
        context.Request.Headers.Remove(HeaderNames.TransferEncoding);
        // The tee must read the answer: ask for it uncompressed (an absent header would allow any coding).
        context.Request.Headers.AcceptEncoding = "identity";
        exchange.Request = request;
        exchange.Record = true;

        await ForwardAsync(exchange).ConfigureAwait(false);
        Hold(exchange);
    }

    private Task ForwardAsync(Exchange exchange)
    {
        exchange.ForwardStarted = Stopwatch.GetTimestamp();
        return _next(exchange.Context);
    }

    /// <summary>
    /// Called once YARP has copied the whole answer to the client. The turn becomes visible to this replica's reads now;
    /// it is handed to the writer only when the response has completed, so no Redis write races the last bytes.
    /// </summary>
    private void Hold(Exchange exchange)
    {
        if (exchange.Context.Features.Get<IForwarderErrorFeature>() is not null
            || exchange.UpstreamStatus is < 200 or > 299)
        {
            return;
        }

        var parser = exchange.Parser;
        if (parser is null || !parser.Completed || parser.Failure is not null)
        {
            Log.AnswerNotRecorded(_logger, exchange.DialectId.Label(),
                exchange.NotRecordable ?? parser?.Failure ?? "the stream ended before the answer was complete");
            return;
        }

        var id = TurnCodec.NewId();
        var payload = TurnCodec.Encode(
            id,
            _time.GetUtcNow().ToUnixTimeMilliseconds(),
            exchange.DialectId.Label(),
            EstimateTokens(exchange.Request!.InputBytes, parser),
            parser.UsageJson,
            exchange,
            static (writer, state) => state.Dialect!.WriteTurnMessages(writer, state.Body!.Span, state.Request!, state.Parser!));

        if (!TurnCodec.TryRead(payload, out var view))
        {
            Log.AnswerNotRecorded(_logger, exchange.DialectId.Label(), "the stored form of the turn did not read back");
            return;
        }

        var turn = new Turn(exchange.Session!, id, payload, view, exchange.DialectId);
        _queue.Hold(turn);
        exchange.Turn = turn;
    }

    private Task Complete(object state)
    {
        var exchange = (Exchange)state;
        try
        {
            if (exchange.Turn is { } turn)
            {
                _queue.Enqueue(turn);
            }

            Observe(exchange, Stopwatch.GetTimestamp());
        }
        finally
        {
            exchange.Dispose();
        }

        return Task.CompletedTask;
    }

    private void Observe(Exchange exchange, long now)
    {
        var dialect = exchange.DialectId;
        _metrics.Request(dialect, exchange.Memory, Classify(exchange));
        if (exchange.Parser is { } parser)
        {
            _metrics.Tokens(dialect, parser.InputTokens, parser.OutputTokens);
        }

        var forwarded = exchange.ForwardStarted;
        if (forwarded == 0)
        {
            return;
        }

        if (exchange.UpstreamHeaders != 0)
        {
            _metrics.Stage(Stage.UpstreamHeaders, dialect, Seconds(forwarded, exchange.UpstreamHeaders));
        }

        if (exchange.UpstreamFirstByte != 0)
        {
            _metrics.Stage(Stage.UpstreamFirstByte, dialect, Seconds(forwarded, exchange.UpstreamFirstByte));
        }

        if (exchange.UpstreamEnded != 0)
        {
            var upstream = Seconds(forwarded, exchange.UpstreamEnded);
            _metrics.Stage(Stage.UpstreamTotal, dialect, upstream);
            _metrics.Overhead(dialect, Seconds(exchange.Started, now) - upstream);
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

        if (exchange.UpstreamStatus is 0 or >= 400 || (exchange.Record && exchange.Turn is null))
        {
            return Outcome.UpstreamError;
        }

        return Outcome.Completed;
    }

    private static bool IsClientSide(ForwarderError error) => error is
        ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.RequestBodyClient
        or ForwarderError.ResponseBodyCanceled or ForwarderError.ResponseBodyClient
        or ForwarderError.UpgradeRequestCanceled or ForwarderError.UpgradeRequestClient
        or ForwarderError.UpgradeResponseCanceled or ForwarderError.UpgradeResponseClient;

    private static double Seconds(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalSeconds;

    private static int EstimateTokens(int inputBytes, ResponseParser parser)
    {
        // Roughly four bytes a token for the inputs; the upstream's count for the answer when it gave one.
        var output = parser.OutputTokens >= 0 ? parser.OutputTokens : (parser.OutputBytes + 3) / 4;
        return (int)Math.Min(int.MaxValue, ((inputBytes + 3) / 4) + output);
    }

    private bool TryGetMode(HttpContext context, Microsoft.Extensions.Primitives.StringValues header, out MemoryMode mode)
    {
        if (header.Count > 0)
        {
            mode = default;
            return header.Count == 1 && MemoryModes.TryParse(header[0], out mode);
        }

        var metadata = context.Features.Get<IReverseProxyFeature>()?.Route.Config.Metadata;
        if (metadata is not null && metadata.TryGetValue(ModeMetadata, out var configured) && MemoryModes.TryParse(configured, out mode))
        {
            return true;
        }

        mode = _memory.Mode;
        return true;
    }

    private static Task WriteHeaders(object state)
    {
        var exchange = (Exchange)state;
        var headers = exchange.Context.Response.Headers;
        headers[MemoryHeader] = MnemoMetrics.Label(exchange.Memory);
        var turns = exchange.ContextTurns;
        headers[ContextTurnsHeader] = turns < s_turnCounts.Length ? s_turnCounts[turns] : turns.ToString(CultureInfo.InvariantCulture);
        return Task.CompletedTask;
    }

    private static async Task RejectAsync(Exchange exchange, int statusCode, string code, string message)
    {
        exchange.Rejected = true;
        var response = exchange.Context.Response;
        if (response.HasStarted)
        {
            return;
        }

        await exchange.Dialect!.WriteErrorAsync(response, statusCode, code, message, exchange.Context.RequestAborted).ConfigureAwait(false);
    }

    private static int InitialBodyCapacity(HttpRequest request) =>
        request.ContentLength is long length and > 0 and < 64 * 1024 * 1024 ? (int)length + 1 : 16 * 1024;

    /// <summary>Reads the whole body; returns null, or why it could not (status 0 when the client went away).</summary>
    private static async ValueTask<BodyError?> ReadBodyAsync(HttpRequest request, PooledBuffer body, CancellationToken cancellationToken)
    {
        try
        {
            var stream = request.Body;
            while (true)
            {
                var read = await stream.ReadAsync(body.GetMemory(4096), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return null;
                }

                body.Advance(read);
            }
        }
        catch (BadHttpRequestException ex)
        {
            return new BodyError(ex.StatusCode, ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? "The request body is larger than this proxy accepts."
                : "The request body could not be read.");
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            return new BodyError(0, "The client went away.");
        }
    }

    private sealed record BodyError(int StatusCode, string Message);
}

/// <summary>Parsing of <see cref="MemoryMode"/> names in headers and route metadata.</summary>
internal static class MemoryModes
{
    public static bool TryParse(string? value, out MemoryMode mode)
    {
        if (string.Equals(value, "inject", StringComparison.OrdinalIgnoreCase))
        {
            mode = MemoryMode.Inject;
            return true;
        }

        if (string.Equals(value, "record", StringComparison.OrdinalIgnoreCase))
        {
            mode = MemoryMode.Record;
            return true;
        }

        if (string.Equals(value, "off", StringComparison.OrdinalIgnoreCase))
        {
            mode = MemoryMode.Off;
            return true;
        }

        mode = default;
        return false;
    }
}
