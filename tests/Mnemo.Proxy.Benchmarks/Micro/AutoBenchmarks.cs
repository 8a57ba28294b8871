using System.Text;
using BenchmarkDotNet.Attributes;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Benchmarks.Micro;

/// <summary>
/// What Auto mode adds to a memory request's body work over Inject: parse, choose 20 turns, decide, splice. The
/// new-only request is the case where Auto must cost what Inject costs; the full-history one shows what the semantic
/// comparison of 20 stored turns costs when the client does resend them.
/// </summary>
[MemoryDiagnoser]
public class AutoBenchmarks
{
    private readonly OpenAIChatDialect _dialect = new();
    private readonly DialectRegistry _dialects = new();
    private readonly SplicePlan _plan = new();
    private byte[] _newOnly = [];
    private byte[] _fullHistory = [];
    private StoredTurn[] _stored = [];
    private byte[] _destination = [];

    [GlobalSetup]
    public void Setup()
    {
        const string System = """{"role":"system","content":"You are a terse assistant."}""";
        const string Question = """{"role":"user","content":"Question 21: what next?"}""";
        _newOnly = Encoding.UTF8.GetBytes($$"""{"model":"m","stream":true,"messages":[{{System}},{{Question}}]}""");
        _stored = Enumerable.Range(0, 20).Select(Fixtures.StoredTurn).ToArray();

        // The same 20 turns as a client re-serialises them (content as an array of parts), then the new question.
        var history = string.Join(",", Enumerable.Range(0, 20).Select(i =>
            $$"""{"role":"user","content":[{"type":"text","text":"Question {{i}}: what next?"}]},{"role":"assistant","content":[{"type":"text","text":"{{string.Concat(Enumerable.Repeat("word ", 20))}}"}]}"""));
        _fullHistory = Encoding.UTF8.GetBytes($$"""{"model":"m","stream":true,"messages":[{{System}},{{history}},{{Question}}]}""");
        _destination = new byte[_fullHistory.Length + 8192];

        // The cases measure what they claim: the full transcript matches (nothing spliced, one input), the new-only one does not.
        if (Run(_fullHistory, auto: true) != _fullHistory.Length + 1 || Run(_newOnly, auto: true) != Run(_newOnly, auto: false))
        {
            throw new InvalidOperationException("Auto did not decide as the benchmark expects.");
        }
    }

    [Benchmark(Baseline = true)]
    public int InjectNewOnly() => Run(_newOnly, auto: false);

    [Benchmark]
    public int AutoNewOnly() => Run(_newOnly, auto: true);

    [Benchmark]
    public int AutoFullHistory20Turns() => Run(_fullHistory, auto: true);

    private int Run(byte[] body, bool auto)
    {
        _ = _dialect.ParseRequest(body, fullHistory: false, _plan);
        var window = ContextWindow.Choose(_stored, [], 20, 0);
        if (auto)
        {
            AutoMatch.Apply(_dialect, _dialects, body, _plan, window.Chosen, out var missing);
            window = window.Oldest(missing);
        }

        var segments = window.Segments(_dialect, null!, out var count, out _);
        var written = Splice.Write(body, _plan, segments.AsSpan(0, count), _destination);
        window.Return(segments);
        return written + _plan.Inputs.Count;
    }
}
