using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;
using StackExchange.Redis;

namespace Mnemo.Proxy.Resilience;

/// <summary>The Polly pipeline around Redis reads: a timeout and a circuit breaker, so a failing Redis is skipped fast.</summary>
/// <remarks>
/// Built with <see cref="ResiliencePipelineBuilder"/> directly, without the DI registry's telemetry: that adds a
/// duration measurement and event plumbing to every execution, about ten microseconds on a read that takes fifty.
/// Breaker state changes are logged here instead. Writes have no pipeline: the write-back retries failed turns in
/// batches itself (see <see cref="WriteRetryPolicy"/>), which a per-call retry strategy cannot do.
/// </remarks>
internal sealed class RedisPipelines
{
    private readonly CircuitBreakerManualControl _readControl = new();
    private readonly CircuitBreakerStateProvider _readState = new();

    public RedisPipelines(IOptions<RedisResilienceOptions> options, TimeProvider time, ILoggerFactory loggers, RedisConnection? connection = null)
    {
        var settings = options.Value;
        var logger = loggers.CreateLogger("Mnemo.Proxy.Resilience");

        // Circuit breaker around a timeout: a slow or failing Redis costs a request at most the read timeout.
        Read = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddCircuitBreaker(Breaker(settings, logger, "read", _readControl, _readState))
            .AddTimeout(settings.ReadTimeout)
            .Build();

        // The breaker's own probe comes only after its break; when the connection is back, reads work at once.
        if (connection is not null)
        {
            connection.Restored += CloseReadCircuit;
        }
    }

    public ResiliencePipeline Read { get; }

    private void CloseReadCircuit()
    {
        if (_readState.CircuitState is CircuitState.Open or CircuitState.HalfOpen)
        {
            _ = _readControl.CloseAsync();
        }
    }

    private static PredicateBuilder<object> RedisFailures() => new PredicateBuilder()
        .Handle<RedisException>()
        .Handle<TimeoutRejectedException>()
        .Handle<TimeoutException>();

    private static CircuitBreakerStrategyOptions Breaker(
        RedisResilienceOptions options, ILogger logger, string operation, CircuitBreakerManualControl control, CircuitBreakerStateProvider state) => new()
    {
        ShouldHandle = RedisFailures(),
        FailureRatio = options.BreakerFailureRatio,
        MinimumThroughput = options.BreakerMinimumThroughput,
        SamplingDuration = options.BreakerSamplingDuration,
        BreakDuration = options.BreakerBreakDuration,
        ManualControl = control,
        StateProvider = state,
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
