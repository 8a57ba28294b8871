using Microsoft.Extensions.Options;
using Mnemo.Proxy.Metrics;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;
using StackExchange.Redis;

namespace Mnemo.Proxy.Resilience;

/// <summary>The two Polly pipelines around Redis: reads fail open fast, writes retry.</summary>
/// <remarks>
/// Built with <see cref="ResiliencePipelineBuilder"/> directly, without the DI registry's telemetry: that adds a
/// duration measurement and event plumbing to every execution, about ten microseconds on a read that takes fifty.
/// Breaker state changes are logged here instead, and retries and drops are counted in Mnemo's own metrics.
/// </remarks>
internal sealed class RedisPipelines
{
    public RedisPipelines(IOptions<RedisResilienceOptions> options, MnemoMetrics metrics, TimeProvider time, ILoggerFactory loggers)
    {
        var settings = options.Value;
        var logger = loggers.CreateLogger("Mnemo.Proxy.Resilience");

        // Circuit breaker around a timeout: a slow or failing Redis costs a request at most the read timeout.
        Read = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddCircuitBreaker(Breaker(settings, logger, "read"))
            .AddTimeout(settings.ReadTimeout)
            .Build();

        // Retry around a circuit breaker around a per-attempt timeout. The write-back makes a turn's first attempt
        // itself, pipelined with its batch; running this pipeline is the first retry, so Polly adds the other
        // WriteRetries - 1 (its retry strategy wants at least one, so there is none below two).
        var write = new ResiliencePipelineBuilder { TimeProvider = time };
        if (settings.WriteRetries > 1)
        {
            write.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = RedisFailures().Handle<BrokenCircuitException>(),
                MaxRetryAttempts = settings.WriteRetries - 1,
                Delay = settings.WriteRetryDelay,
                MaxDelay = settings.WriteRetryMaxDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                OnRetry = _ =>
                {
                    metrics.WriteBack(WriteBackOutcome.Retried);
                    return default;
                },
            });
        }

        Write = write
            .AddCircuitBreaker(Breaker(settings, logger, "write"))
            .AddTimeout(settings.WriteTimeout)
            .Build();
    }

    public ResiliencePipeline Read { get; }

    public ResiliencePipeline Write { get; }

    private static PredicateBuilder<object> RedisFailures() => new PredicateBuilder()
        .Handle<RedisException>()
        .Handle<TimeoutRejectedException>()
        .Handle<TimeoutException>();

    private static CircuitBreakerStrategyOptions Breaker(RedisResilienceOptions options, ILogger logger, string operation) => new()
    {
        ShouldHandle = RedisFailures(),
        FailureRatio = options.BreakerFailureRatio,
        MinimumThroughput = options.BreakerMinimumThroughput,
        SamplingDuration = options.BreakerSamplingDuration,
        BreakDuration = options.BreakerBreakDuration,
        OnOpened = args =>
        {
            Log.CircuitOpened(logger, operation, args.BreakDuration);
            return default;
        },
        OnClosed = _ =>
        {
            Log.CircuitClosed(logger, operation);
            return default;
        },
    };
}
