using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Benchmarks.Micro;

/// <summary>
/// What keeping the forwarded conversation valid costs a request: the window's segments and the pairing step, for 20
/// plain turns, 20 turns of a tool loop, and the same loop with its last call left unanswered (closed); and the
/// shape worked out at capture.
/// </summary>
[MemoryDiagnoser]
public class PairingBenchmarks
{
    private readonly OpenAIChatDialect _dialect = new();
    private readonly MnemoMetrics _metrics = new();
    private StoredTurn[] _plain = [];
    private StoredTurn[] _legacy = [];
    private StoredTurn[] _tools = [];
    private StoredTurn[] _dangling = [];
    private byte[] _toolTurn = [];
    private byte[] _plainTurn = [];
    private Converter _converter = null!;

    [GlobalSetup]
    public void Setup()
    {
        _converter = new Converter(new DialectRegistry(), _metrics);
        _plain = [.. Enumerable.Range(0, 20).Select(i => Turn(Plain(i), shaped: true))];
        _legacy = [.. Enumerable.Range(0, 20).Select(i => Turn(Plain(i), shaped: false))];
        // A tool loop: even turns ask and get a call, odd turns answer it and get text.
        _tools = [.. Enumerable.Range(0, 20).Select(i => Turn(i % 2 == 0 ? Call(i) : Result(i - 1), shaped: true))];
        _dangling = [.. _tools.Take(19).Append(Turn(Call(19), shaped: true))];
        _toolTurn = Encoding.UTF8.GetBytes(Call(0));
        _plainTurn = Encoding.UTF8.GetBytes(Plain(0));
    }

    [Benchmark(Baseline = true)]
    public int PlainTurns() => Build(_plain, []);

    [Benchmark]
    public int PlainTurnsStoredBeforeShapes() => Build(_legacy, []);

    [Benchmark]
    public int ToolLoopTurns() => Build(_tools, []);

    [Benchmark]
    public int ToolLoopLastCallUnanswered() => Build(_dangling, []);

    [Benchmark]
    public int CaptureShapeOfAToolTurn() => Pairing.Shape(_dialect, _toolTurn).Calls.Length;

    [Benchmark]
    public int CaptureShapeOfAPlainTurn() => Pairing.Shape(_dialect, _plainTurn).Calls.Length;

    private int Build(StoredTurn[] stored, string[] answers)
    {
        var window = ContextWindow.Choose(stored, [], 20, 0);
        var segments = window.Segments(_dialect, _converter, out var count, out var shapes);
        var valid = ValidHistory.Apply(_dialect, segments, shapes, ref count, answers, _metrics);
        var bytes = 0;
        for (var i = 0; i < count; i++)
        {
            bytes += valid[i].Length;
        }

        window.Return(segments);
        return bytes;
    }

    private static string Plain(int i) =>
        $$"""{"role":"user","content":"Question {{i}}: what next?"},{"role":"assistant","content":"word word word word word word word word word word word word word word word word word word word word "}""";

    private static string Call(int i) =>
        $$$"""{"role":"user","content":"Question {{{i}}}: the weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_{{{i}}}","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}""";

    private static string Result(int i) =>
        $$"""{"role":"tool","tool_call_id":"call_{{i}}","content":"Sunny, 22 degrees"},{"role":"assistant","content":"It is sunny and 22 degrees in Paris."}""";

    private StoredTurn Turn(string elements, bool shaped)
    {
        var dialect = _dialect;
        var payload = TurnCodec.Encode(
            TurnCodec.NewId(),
            1_700_000_000_000,
            DialectId.OpenAIChat,
            40,
            TokenUsage.Unknown,
            elements,
            static (w, s) =>
            {
                foreach (var message in JsonDocument.Parse("[" + s + "]").RootElement.EnumerateArray())
                {
                    w.WriteRawValue(message.GetRawText());
                }
            },
            shape: shaped ? (e, _) => Pairing.Shape(dialect, e) : null);
        return TurnCodec.TryRead(payload, out var turn) ? turn : throw new InvalidOperationException();
    }
}
