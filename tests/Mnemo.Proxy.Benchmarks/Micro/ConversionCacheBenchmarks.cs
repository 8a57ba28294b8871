using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Benchmarks.Micro;

/// <summary>
/// Issue 11 item 6: does caching a cross-dialect conversion (immutable: keyed by the stored turns' ids and the target
/// dialect) in HybridCache's in-memory tier pay against converting again? Converting 20 turns vs a cache hit, key
/// building included.
/// </summary>
[MemoryDiagnoser]
public class ConversionCacheBenchmarks
{
    private static readonly DialectRegistry s_dialects = new();
    private readonly Converter _converter = new(s_dialects, new MnemoMetrics());
    private ForeignTurn[] _turns = [];
    private Dialect _target = null!;
    private HybridCache _cache = null!;

    [GlobalSetup]
    public void Setup()
    {
        _target = s_dialects.Get(DialectId.AnthropicMessages)!;
        _turns = Enumerable.Range(0, 20)
            .Select(i => new ForeignTurn(DialectId.OpenAIChat, Streams.Turn(DialectId.OpenAIChat, i), Encoding.ASCII.GetBytes($"0190a1b2c3d47e5f8a9b0c1d2e3f{i:x4}")))
            .ToArray();
        var services = new ServiceCollection();
        services.AddHybridCache();
        _cache = services.BuildServiceProvider().GetRequiredService<HybridCache>();
        _ = CachedAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true)]
    public int Convert20Turns() => _converter.Convert(_target, _turns).Length;

    [Benchmark]
    public int HybridCacheHit20Turns() => CachedAsync().AsTask().GetAwaiter().GetResult().Length;

    private ValueTask<byte[]> CachedAsync()
    {
        var key = new StringBuilder(20 * 33 + 20).Append(_target.Id.Label());
        foreach (var turn in _turns)
        {
            key.Append(':').Append(Encoding.ASCII.GetString(turn.Id.Span));
        }

        return _cache.GetOrCreateAsync(key.ToString(), this, static (state, _) => ValueTask.FromResult(state._converter.Convert(state._target, state._turns)));
    }
}
