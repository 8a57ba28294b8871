using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Forwarding;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Tokens;
using Mnemo.Proxy.WriteBack;
using Yarp.ReverseProxy.Model;

namespace Mnemo.Proxy.Summary;

/// <summary>
/// Runs the rolling summary in the background: a completed memory request whose read found enough unsummarised turns
/// outside the window queues a run for its session; a run reads the session, folds the turns that left the window into
/// the previous summary with one upstream call and stores the result with a compare-and-set. Never on a request's path:
/// a failing summarizer only leaves the window without a newer summary (counted, logged without content).
/// </summary>
internal sealed class SummaryService : BackgroundService
{
    private static readonly string[] s_credentialHeaders = ["Authorization", "x-api-key", "api-key"];

    private readonly SummaryOptions _options;
    private readonly MemoryOptions _memory;
    private readonly int _contextTurns;
    private readonly int _readCount;
    private readonly string _upstream;
    private readonly IHistoryStore _store;
    private readonly DialectRegistry _dialects;
    private readonly MnemoMetrics _metrics;
    private readonly ILogger<SummaryService> _logger;
    private readonly DialectId? _dialect;
    private readonly Channel<SummaryJob> _jobs;
    private readonly ConcurrentDictionary<string, byte> _queued = new(StringComparer.Ordinal);
    private readonly HttpClient _http;
    private readonly WriteBackQueue _queue;

    private readonly TokenCounter _tokens;

    /// <summary>The summary's tokens for the budget: counted like a turn (in the background) when counting is on.</summary>
    private int CountTokens(string summary) => _tokens.Enabled
        ? _tokens.Count(System.Text.Encoding.UTF8.GetBytes(summary), _options.Model)
        : SummaryCall.EstimateTokens(System.Text.Encoding.UTF8.GetByteCount(summary));

    public SummaryService(
        IOptions<SummaryOptions> options,
        IOptions<MemoryOptions> memory,
        IOptions<StoreOptions> store,
        IOptions<ForwardingOptions> forwarding,
        IHistoryStore history,
        DialectRegistry dialects,
        MnemoMetrics metrics,
        WriteBackQueue queue,
        TokenCounter tokens,
        ILogger<SummaryService> logger)
    {
        _queue = queue;
        _tokens = tokens;
        _options = options.Value;
        _memory = memory.Value;
        _contextTurns = Math.Min(_memory.MaxContextTurns, store.Value.MaxStoredTurns);
        _readCount = Math.Max(_options.HardMaxStoredTurns, store.Value.MaxStoredTurns);
        _upstream = _options.Upstream is { Length: > 0 } upstream ? upstream : forwarding.Value.Upstream;
        _store = history;
        _dialects = dialects;
        _metrics = metrics;
        _logger = logger;
        _dialect = DialectLabels.TryParse(_options.Dialect, out var dialect) ? dialect : null;
        _jobs = Channel.CreateBounded<SummaryJob>(new BoundedChannelOptions(Math.Max(1, _options.QueueCapacity))
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.DropWrite,
        });
        _http = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = System.Net.DecompressionMethods.All }, disposeHandler: true)
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public bool Enabled => _options.Enabled;

    /// <summary>Whether a read that left <paramref name="outside"/> unsummarised turns outside the window should queue a run.</summary>
    public bool ShouldRun(long outside) =>
        _options.Enabled && outside > 0 && ((_options.TriggerTurns > 0 && outside >= _options.TriggerTurns) || _options.TriggerTokens > 0);

    /// <summary>
    /// Queues a run for the exchange's session once its response has completed with a turn captured. The request's
    /// credentials are copied now, held in memory for the call only: never logged, never stored.
    /// </summary>
    public void Schedule(Exchange exchange)
    {
        var context = exchange.Context;
        if (exchange.Session is not { } session || exchange.Dialect is not { } dialect || exchange.Turn is not { } turn || ExchangeTelemetry.Failed(exchange))
        {
            return;
        }

        if (!_queued.TryAdd(session.Slot, 0))
        {
            // A run for this session is queued or running: it reads the session when it starts, so it covers this one too.
            return;
        }

        var credentials = new List<KeyValuePair<string, string>>(2);
        if (_options.Credentials == SummaryCredentials.Request)
        {
            foreach (var name in s_credentialHeaders)
            {
                if (context.Request.Headers[name] is { Count: 1 } value && value[0] is { Length: > 0 } text)
                {
                    credentials.Add(new(name, text));
                }
            }
        }

        var version = context.Request.Headers["anthropic-version"] is { Count: 1 } v ? v[0] : null;
        var destination = context.Features.Get<IReverseProxyFeature>()?.ProxiedDestination?.Model.Config.Address;
        var job = new SummaryJob(session, turn, dialect.Id, context.Request.Path + context.Request.QueryString, destination, credentials, version);
        if (!_jobs.Writer.TryWrite(job))
        {
            _queued.TryRemove(session.Slot, out _);
            Log.SummaryQueueFull(_logger);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Enabled)
        {
            return;
        }

        Log.SummaryEnabled(_logger, _options.Dialect is { Length: > 0 } d ? d : "of the request", _options.Credentials);
        try
        {
            await foreach (var job in _jobs.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await RunAsync(job, stoppingToken).ConfigureAwait(false);
                }
                finally
                {
                    _queued.TryRemove(job.Session.Slot, out _);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One run: null when there was nothing to fold (no outcome counted).</summary>
    internal async Task<SummaryOutcome?> RunAsync(SummaryJob job, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var target = _dialect ?? job.Dialect;
        SummaryOutcome? outcome = null;
        try
        {
            outcome = await FoldAsync(job, target, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            // Only the type: messages can quote keys (session ids) or the upstream's answer.
            Log.SummaryFailed(_logger, ex is OperationCanceledException ? "timed out" : ex.GetType().Name);
            outcome = SummaryOutcome.Failed;
        }

        if (outcome is { } done)
        {
            _metrics.Summary(done);
            _metrics.Stage(Stage.Summary, target, Stopwatch.GetElapsedTime(started).TotalSeconds);
        }

        return outcome;
    }

    private async Task<SummaryOutcome?> FoldAsync(SummaryJob job, DialectId target, CancellationToken cancellationToken)
    {
        // After the triggering turn's write: the run then sees the session as the next request will.
        for (var waited = 0; waited < 1500 && Array.IndexOf(_queue.Pending.Snapshot(job.Session), job.Turn) >= 0; waited++)
        {
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }

        var read = await _store.ReadWithSummaryAsync(job.Session, _readCount, cancellationToken).ConfigureAwait(false);
        var previous = read.Summary;
        var result = new ReadResult(read.Turns, TimeSpan.Zero, previous, read.Length, read.Covered);
        var uncovered = SummaryWindow.Uncovered(result);
        var window = ContextWindow.Choose(uncovered, [], _contextTurns, _memory.MaxContextTokens, _memory.MaxContextBytes,
            _memory.EvictionFraction, reservedTokens: result.Summary?.Tokens ?? 0);
        var outside = uncovered.Length - window.Count;
        window.Return([]);
        if (outside <= 0)
        {
            return null;
        }

        var fold = uncovered[..Math.Min(outside, Math.Max(1, _options.MaxTurnsPerCall))];
        long tokens = 0;
        foreach (var turn in fold)
        {
            tokens += turn.Tokens;
        }

        if (!((_options.TriggerTurns > 0 && outside >= _options.TriggerTurns) || (_options.TriggerTokens > 0 && tokens >= _options.TriggerTokens)))
        {
            return null;
        }

        var dialect = _dialects.Get(target)!;
        var transcript = SummaryCall.Transcript(previous is null ? null : SummaryCall.Unescape(previous.Text), fold, _dialects);
        var body = SummaryCall.Body(target, _options.Model, _options.Prompt, transcript, _options.MaxTokens);
        var path = _options.Path is { Length: > 0 } configured ? configured
            : target == job.Dialect ? job.Path
            : SummaryCall.DefaultPath(target);
        var baseUrl = _options.Upstream is { Length: > 0 } ? _upstream : job.Destination ?? _upstream;
        using var request = new HttpRequestMessage(HttpMethod.Post, baseUrl.TrimEnd('/') + path)
        {
            Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        };
        AddCredentials(request, job, target);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        string? summary;
        using (var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, timeout.Token).ConfigureAwait(false))
        {
            if (!response.IsSuccessStatusCode)
            {
                Log.SummaryFailed(_logger, "upstream status " + (int)response.StatusCode);
                return SummaryOutcome.Failed;
            }

            var answer = await response.Content.ReadAsByteArrayAsync(timeout.Token).ConfigureAwait(false);
            summary = SummaryCall.Answer(dialect, response.Content.Headers.ContentType?.MediaType, answer);
        }

        if (summary is null)
        {
            Log.SummaryFailed(_logger, "the answer had no complete text");
            return SummaryOutcome.Failed;
        }

        var text = SummaryCall.Escape(summary);
        var coveredId = System.Text.Encoding.ASCII.GetString(fold[^1].Id);
        var written = await _store.WriteSummaryAsync(
            job.Session, previous?.CoveredId, coveredId, text, CountTokens(summary), cancellationToken).ConfigureAwait(false);
        if (written == SummaryWrite.Superseded)
        {
            Log.SummarySuperseded(_logger);
            return SummaryOutcome.Superseded;
        }

        return SummaryOutcome.Written;
    }

    private void AddCredentials(HttpRequestMessage request, SummaryJob job, DialectId target)
    {
        if (target == DialectId.AnthropicMessages)
        {
            request.Headers.TryAddWithoutValidation("anthropic-version", job.AnthropicVersion ?? "2023-06-01");
        }

        if (_options.Credentials == SummaryCredentials.ApiKey)
        {
            if (_options.ApiKey.Length > 0)
            {
                if (target == DialectId.AnthropicMessages)
                {
                    request.Headers.TryAddWithoutValidation("x-api-key", _options.ApiKey);
                }
                else
                {
                    request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _options.ApiKey);
                }
            }

            return;
        }

        foreach (var (name, value) in job.Credentials)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }
}

/// <summary>
/// A queued summary run: the session, the triggering turn (the run waits for its write), the triggering request's dialect, path (with query) and upstream destination,
/// and its credential headers (in memory only; <see cref="ToString"/> leaves them out).
/// </summary>
internal sealed record SummaryJob(
    SessionKey Session, Turn Turn, DialectId Dialect, string Path, string? Destination, IReadOnlyList<KeyValuePair<string, string>> Credentials, string? AnthropicVersion)
{
    public override string ToString() => "SummaryJob";
}
