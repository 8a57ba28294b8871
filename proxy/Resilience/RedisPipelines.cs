using Microsoft.Extensions.Options;
using Mnemo.Proxy.Metrics;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;
using StackExchange.Redis;

namespace Mnemo.Proxy.Resilience;

/// <summary>The two Polly pipelines around Redis: reads fail open fast, writes retry.</summary>
internal static class RedisPipelines
{
    /// <summary>Circuit breaker around a timeout: a slow or failing Redis costs a request at most the read timeout.</summary>
    public const string Read = "mnemo-redis-read";

    /// <summary>Retry around a circuit breaker around a per-attempt timeout.</summary>
    public const string Write = "mnemo-redis-write";

    private static PredicateBuilder<object> RedisFailures() => new PredicateBuilder()
        .Handle<RedisException>()
        .Handle<TimeoutRejectedException>()
        .Handle<TimeoutException>();

    public static IServiceCollection AddMnemoResilience(this IServiceCollection services)
    {
        services.AddResiliencePipeline(Read, static (builder, context) =>
        {
            var options = context.ServiceProvider.GetRequiredService<IOptions<RedisResilienceOptions>>().Value;
            var logger = context.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger("Mnemo.Proxy.Resilience");
            builder.TimeProvider = context.ServiceProvider.GetRequiredService<TimeProvider>();
            builder
                .AddCircuitBreaker(Breaker(options, logger, "read"))
                .AddTimeout(options.ReadTimeout);
        });

        services.AddResiliencePipeline(Write, static (builder, context) =>
        {
            var options = context.ServiceProvider.GetRequiredService<IOptions<RedisResilienceOptions>>().Value;
            var metrics = context.ServiceProvider.GetRequiredService<MnemoMetrics>();
            var logger = context.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger("Mnemo.Proxy.Resilience");
            builder.TimeProvider = context.ServiceProvider.GetRequiredService<TimeProvider>();
            builder
                .AddRetry(new RetryStrategyOptions
                {
                    ShouldHandle = RedisFailures().Handle<BrokenCircuitException>(),
                    MaxRetryAttempts = options.WriteRetries,
                    Delay = options.WriteRetryDelay,
                    MaxDelay = options.WriteRetryMaxDelay,
                    BackoffType = DelayBackoffType.Exponential,
                    UseJitter = true,
                    OnRetry = _ =>
                    {
                        metrics.WriteBack(WriteBackOutcome.Retried);
                        return default;
                    },
                })
                .AddCircuitBreaker(Breaker(options, logger, "write"))
                .AddTimeout(options.WriteTimeout);
        });

        return services;
    }

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
