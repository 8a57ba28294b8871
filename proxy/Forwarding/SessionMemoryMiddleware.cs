using System.Diagnostics;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Mnemo.Proxy.Buffers;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Summary;
using Mnemo.Proxy.WriteBack;

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

    /// <summary>Per-request override of <see cref="MemoryOptions.Consistency"/>; never forwarded.</summary>
    public const string ConsistencyHeader = "X-Mnemo-Consistency";

    private readonly RequestDelegate _next;
    private readonly DialectRegistry _dialects;
    private readonly Converter _converter;
    private readonly SessionResolver _sessions;
    private readonly FailOpenReader _history;
    private readonly WriteBackQueue _queue;
    private readonly WriteBackService _writer;
    private readonly MnemoMetrics _metrics;
    private readonly ExchangeTelemetry _telemetry;
    private readonly TurnCapture _capture;
    private readonly MemoryOptions _memory;
    private readonly int _contextTurns;
    private readonly bool _forwardSession;
    private readonly Func<object, Task> _onCompleted;
    private readonly Action<Exchange> _onAnswer;
    private readonly SummaryService _summary;
    private readonly Func<object, Task> _scheduleSummary;

    public SessionMemoryMiddleware(
        RequestDelegate next,
        DialectRegistry dialects,
        Converter converter,
        SessionResolver sessions,
        FailOpenReader history,
        WriteBackQueue queue,
        WriteBackService writer,
        MnemoMetrics metrics,
        ExchangeTelemetry telemetry,
        TurnCapture capture,
        IOptions<MemoryOptions> memory,
        IOptions<StoreOptions> store,
        IOptions<SessionIdOptions> sessionOptions,
        SummaryService summary)
    {
        _summary = summary;
        _scheduleSummary = static state =>
        {
            var (service, exchange) = ((SummaryService, Exchange))state;
            if (exchange.Turn is not null)
            {
                service.Schedule(exchange);
            }

            return Task.CompletedTask;
        };
        _next = next;
        _dialects = dialects;
        _converter = converter;
        _sessions = sessions;
        _history = history;
        _queue = queue;
        _writer = writer;
        _metrics = metrics;
        _telemetry = telemetry;
        _capture = capture;
        _memory = memory.Value;
        _contextTurns = Math.Min(_memory.MaxContextTurns, store.Value.MaxStoredTurns);
        _forwardSession = sessionOptions.Value.Forward;
        _onCompleted = Complete;
        _onAnswer = Hold;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        var exchange = new Exchange(context, Stopwatch.GetTimestamp());
        context.Features.Set(exchange);
        context.Response.OnStarting(ExchangeTelemetry.WriteHeaders, exchange);
        context.Response.OnCompleted(_onCompleted, exchange);

        var modeHeader = context.Request.Headers[ModeHeader];
        if (modeHeader.Count > 0)
        {
            context.Request.Headers.Remove(ModeHeader);
        }

        var consistencyHeader = context.Request.Headers[ConsistencyHeader];
        if (consistencyHeader.Count > 0)
        {
            context.Request.Headers.Remove(ConsistencyHeader);
        }

        var route = RouteMemory.For(context);
        var dialect = route?.Dialect is { } routed ? _dialects.Get(routed) : _dialects.ByPath(context.Request);
        if (dialect is null || !HttpMethods.IsPost(context.Request.Method))
        {
            StripSessionHeader(context.Request);
            await ForwardAsync(exchange).ConfigureAwait(false);
            return;
        }

        exchange.DialectId = dialect.Id;
        exchange.Dialect = dialect;
        var session = _sessions.Resolve(context.Request);
        StripSessionHeader(context.Request);
        if (session.Status == SessionStatus.Absent)
        {
            await ForwardAsync(exchange).ConfigureAwait(false);
            return;
        }

        MemoryMode mode;
        if (modeHeader.Count > 0)
        {
            if (modeHeader.Count != 1 || !MemoryModes.TryParse(modeHeader[0], out mode))
            {
                await RejectAsync(exchange, StatusCodes.Status400BadRequest, "invalid_mnemo_mode",
                    $"The {ModeHeader} header must be one of: inject, auto, record, off.").ConfigureAwait(false);
                return;
            }
        }
        else
        {
            mode = route?.Mode ?? _memory.Mode;
        }

        if (mode == MemoryMode.Off)
        {
            await ForwardAsync(exchange).ConfigureAwait(false);
            return;
        }

        // Memory is for JSON bodies: a form, a file upload or text on a chat path goes on untouched, without memory.
        switch (RequestBody.Kind(context.Request))
        {
            case BodyKind.Other:
                await ForwardAsync(exchange).ConfigureAwait(false);
                return;
            case BodyKind.UnsupportedCharset:
                await RejectAsync(exchange, StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
                    "Session memory needs a JSON body in UTF-8; send it without a charset, or with charset=utf-8.").ConfigureAwait(false);
                return;
            case BodyKind.Encoded:
                await RejectAsync(exchange, StatusCodes.Status415UnsupportedMediaType, "unsupported_content_encoding",
                    "Session memory needs an uncompressed request body: send it without Content-Encoding, or without the session header.").ConfigureAwait(false);
                return;
        }

        if (session.Status == SessionStatus.Invalid)
        {
            await RejectAsync(exchange, session.StatusCode, session.ErrorCode!, session.ErrorMessage!).ConfigureAwait(false);
            return;
        }

        var consistency = _memory.Consistency;
        if (consistencyHeader.Count > 0 && (consistencyHeader.Count != 1 || !MemoryModes.TryParse(consistencyHeader[0], out consistency)))
        {
            await RejectAsync(exchange, StatusCodes.Status400BadRequest, "invalid_mnemo_consistency",
                $"The {ConsistencyHeader} header must be one of: replica, strict.").ConfigureAwait(false);
            return;
        }

        exchange.Strict = consistency == Consistency.Strict;

        await RememberAsync(exchange, dialect, mode, session.Key!).ConfigureAwait(false);
    }

    private async Task RememberAsync(Exchange exchange, Dialect dialect, MemoryMode mode, SessionKey session)
    {
        var context = exchange.Context;
        var aborted = context.RequestAborted;
        exchange.Session = session;

        // The read is started first and runs while the body uploads: one round trip, overlapped.
        var inject = mode is MemoryMode.Inject or MemoryMode.Auto && _contextTurns > 0;
        var pending = inject ? _queue.Pending.Snapshot(session) : [];
        var read = inject ? _history.ReadAsync(session, _contextTurns, aborted, withSummary: _summary.Enabled, strict: exchange.Strict) : default;

        var body = exchange.Body = new PooledBuffer(RequestBody.InitialCapacity(context.Request));
        var bodyError = await RequestBody.ReadAsync(context.Request, body, aborted).ConfigureAwait(false);
        _metrics.Stage(Stage.BodyRead, dialect.Id, Stopwatch.GetElapsedTime(exchange.Started).TotalSeconds);
        var plan = exchange.Plan = new SplicePlan();
        var parsed = bodyError is null ? dialect.ParseRequest(body.Span, mode == MemoryMode.Record, plan) : default;

        ReadResult history = default;
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

        switch (parsed.Outcome)
        {
            case ParseOutcome.Invalid:
                await RejectAsync(exchange, StatusCodes.Status400BadRequest, "invalid_request_body", parsed.Error!).ConfigureAwait(false);
                return;
            case ParseOutcome.PassThrough:
                // Not a turn of the conversation (an Ollama model load, a chained request with no input): the body goes
                // on as received and nothing is stored.
                ForwardBody(context, body.Length, body.AsStream());
                await ForwardAsync(exchange).ConfigureAwait(false);
                return;
        }

        var started = Stopwatch.GetTimestamp();
        ContextWindow window = default;
        ReadOnlyMemory<byte>[] segments = [];
        ReadOnlyMemory<byte>[] spliced = [];
        ReadOnlyMemory<byte> instructions = default;
        var segmentCount = 0;

        // A request chained to a conversation the provider holds gets nothing injected: the provider has it all.
        var splice = inject && !plan.ProviderHeld;
        if (splice)
        {
            _metrics.Stage(Stage.HistoryRead, dialect.Id, history.Elapsed.TotalSeconds);
            if (history.Degraded)
            {
                exchange.Memory = MemoryState.Degraded;
            }
            else
            {
                // --- rolling summary (Summary/SummaryWindow): covered turns stay out, the summary counts in the budget and goes first.
                var uncovered = SummaryWindow.Uncovered(history);
                window = ContextWindow.Choose(uncovered, pending, _contextTurns, _memory.MaxContextTokens, _memory.MaxContextBytes,
                    _memory.EvictionFraction, reservedTokens: history.Summary?.Tokens ?? 0);
                exchange.NextPosition = window.NextPosition;
                exchange.NewestPending = window.NewestPending;
                var stored = window.Count;
                if (_summary.ShouldRun(SummaryWindow.Outside(history, uncovered, window)))
                {
                    context.Response.OnCompleted(_scheduleSummary, (_summary, exchange));
                }

                // What the request's own items start with answers the injected part's open calls: read before Auto
                // narrows the inputs to the new turn.
                var requestAnswers = window.MayEndOpen ? Pairing.LeadingAnswers(dialect, body.Span, plan) : [];
                if (mode == MemoryMode.Auto)
                {
                    // Auto (issue 11): only the stored turns the client did not send itself; plan's inputs become the new turn.
                    AutoMatch.Apply(dialect, _dialects, body.Span, plan, window.Chosen, out var missing);
                    window = window.Oldest(missing);
                }

                segments = window.Segments(dialect, _converter, out segmentCount, out var shapes);
                var valid = ValidHistory.Apply(dialect, segments, shapes, ref segmentCount, requestAnswers, _metrics);
                if (_memory.AnthropicCacheBreakpoint && dialect.Id == DialectId.AnthropicMessages && segmentCount > 0
                    && AnthropicBreakpoint.Count(body.Span) < AnthropicBreakpoint.MaxBreakpoints)
                {
                    valid[segmentCount - 1] = AnthropicBreakpoint.OnLast(valid[segmentCount - 1]);
                }

                spliced = SummaryWindow.Inject(history, dialect, plan, valid, ref segmentCount, out instructions);
                // --- end rolling summary
                exchange.Memory = stored > 0 ? MemoryState.Hit : MemoryState.Empty;
                exchange.ContextTurns = window.Count;
            }
        }
        else if (inject && !history.Degraded)
        {
            // Nothing injected, but the turn stored continues the session's running token position (see ContextWindow).
            (exchange.NextPosition, exchange.NewestPending) = ContextWindow.Next(SummaryWindow.Uncovered(history), pending);
        }

        if (mode == MemoryMode.Auto && (!splice || history.Degraded))
        {
            AutoMatch.WithoutHistory(plan);
        }

        if (plan.References > 0)
        {
            // References to items the provider holds are forwarded as sent, never stored as the turn's input: one to an
            // item Mnemo stored is the client's copy of it (Auto matched it above), one to any other item is not Mnemo's.
            plan.RemoveInputs(range => dialect.ProviderReference(body.Span[range]) is not null);
        }

        var used = spliced.AsSpan(0, segmentCount);
        var length = Splice.Length(body.Length, plan, used, instructions.Span);
        if (segmentCount > 0 || Splice.InBody(plan, instructions.Span))
        {
            var splicedBody = exchange.SplicedBody = ByteArrays.Rent(length);
            length = Splice.Write(body.Span, plan, used, instructions.Span, splicedBody);
            ForwardBody(context, length, new BodyStream(splicedBody, length));
        }
        else
        {
            ForwardBody(context, length, body.AsStream());
        }

        window.Return(segments);
        if (splice && !history.Degraded)
        {
            _metrics.Stage(Stage.ContextBuild, dialect.Id, Stopwatch.GetElapsedTime(started).TotalSeconds);
        }

        // A turn is stored only with something new to remember, and only within MaxTurnBytes.
        if (plan.Inputs.Count == 0)
        {
            exchange.NotStored = NotStoredReason.NoInput;
        }
        else if (plan.InputBytes >= _memory.MaxTurnBytes)
        {
            exchange.NotStored = NotStoredReason.TooLarge;
        }
        else
        {
            // The tee must read the answer: ask for it uncompressed (an absent header would allow any coding).
            context.Request.Headers.AcceptEncoding = "identity";
            exchange.Record = true;
            exchange.AnswerLimit = _memory.MaxTurnBytes - plan.InputBytes;
            exchange.AnswerEnded = _onAnswer;
        }

        await ForwardAsync(exchange).ConfigureAwait(false);
    }

    /// <summary>The session id is the client's, often a user id: the provider gets it only when configured to.</summary>
    private void StripSessionHeader(HttpRequest request)
    {
        if (!_forwardSession)
        {
            request.Headers.Remove(_sessions.SessionHeader);
        }
    }

    private static void ForwardBody(HttpContext context, long length, BodyStream body)
    {
        context.Features.Get<Exchange>()!.Forwarded = body;
        context.Request.Body = body;
        context.Request.ContentLength = length;
        context.Request.Headers.Remove(HeaderNames.TransferEncoding);
    }

    private Task ForwardAsync(Exchange exchange)
    {
        exchange.ForwardStarted = Stopwatch.GetTimestamp();
        return _next(exchange.Context);
    }

    /// <summary>
    /// Called by the tee when the answer's last event has been read, before those bytes go on to the client: the turn is
    /// visible to this replica's reads from now on, so a client that sends its next request the instant it has the
    /// answer always finds it. A Replica turn is handed to the writer when the response has completed, so no Redis write
    /// races the last bytes; a Strict turn is written now, and the tee holds the last bytes until it is.
    /// </summary>
    private void Hold(Exchange exchange)
    {
        if (_capture.Capture(exchange) is not { } turn)
        {
            return;
        }

        _queue.Hold(turn);
        exchange.Turn = turn;
        if (exchange.Strict)
        {
            exchange.DurableWrite = _writer.WriteNowAsync(turn);
        }
    }

    private Task Complete(object state)
    {
        var exchange = (Exchange)state;
        try
        {
            if (exchange.Turn is { } turn && exchange.DurableWrite is not Task<bool> { IsCompletedSuccessfully: true, Result: true })
            {
                if (ExchangeTelemetry.Failed(exchange))
                {
                    // The client left, or the upstream broke, before the end of the answer reached the client: the turn
                    // was never its. (A Strict turn already written stays: its answer was complete at the upstream.)
                    _queue.Withdraw(turn);
                }
                else
                {
                    _queue.Ready(turn);
                }
            }

            _telemetry.Observe(exchange, Stopwatch.GetTimestamp());
        }
        finally
        {
            exchange.Dispose();
        }

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
}
