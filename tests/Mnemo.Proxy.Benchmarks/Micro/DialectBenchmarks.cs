using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Benchmarks.Micro;

/// <summary>Each dialect's request parse and tee parser (a streamed answer of N text deltas, fed event by event), side by side.</summary>
[MemoryDiagnoser]
public class DialectBenchmarks
{
    private static readonly DialectRegistry s_dialects = new();
    private readonly SplicePlan _plan = new();
    private Dialect _dialect = null!;
    private byte[] _body = [];
    private byte[][] _chunks = [];
    private string _mediaType = "";

    [Params("openai-chat", "anthropic-messages", "openai-responses", "ollama-chat")]
    public string Dialect { get; set; } = "";

    [Params(20, 500)]
    public int Tokens { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var id = Streams.Id(Dialect);
        _dialect = s_dialects.Get(id)!;
        (_body, _chunks, _mediaType) = Streams.For(id, Tokens);
        if (ParseRequest() != 1 || !StreamAnswer())
        {
            throw new InvalidOperationException($"{Dialect}: the benchmark's request or stream is not one the dialect records.");
        }
    }

    [Benchmark]
    public int ParseRequest() => _dialect.ParseRequest(_body, fullHistory: false, _plan).Outcome == ParseOutcome.Splice ? _plan.Inputs.Count : -1;

    [Benchmark]
    public bool StreamAnswer()
    {
        using var parser = _dialect.CreateResponseParser(_mediaType)!;
        foreach (var chunk in _chunks)
        {
            parser.Feed(chunk);
        }

        parser.End();
        return parser.Completed;
    }
}

/// <summary>A 20-turn window stored by one dialect, converted for a request of another (only cross-API sessions pay this).</summary>
[MemoryDiagnoser]
public class ConverterBenchmarks
{
    private static readonly DialectRegistry s_dialects = new();
    private readonly Converter _converter = new(s_dialects, new MnemoMetrics());
    private ForeignTurn[] _turns = [];
    private Dialect _target = null!;

    [Params("openai-chat>anthropic-messages", "openai-chat>openai-responses", "openai-chat>ollama-chat", "anthropic-messages>openai-chat")]
    public string Pair { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        var names = Pair.Split('>');
        var from = Streams.Id(names[0]);
        var to = Streams.Id(names[1]);
        _target = s_dialects.Get(to)!;
        _turns = Enumerable.Range(0, 20).Select(i => new ForeignTurn(from, Streams.Turn(from, i), Encoding.ASCII.GetBytes($"0190a1b2c3d47e5f8a9b0c1d2e3f{i:x4}"))).ToArray();
        using var converted = JsonDocument.Parse("[" + Encoding.UTF8.GetString(_converter.Convert(_target, _turns)) + "]");
        if (converted.RootElement.GetArrayLength() != 40)
        {
            throw new InvalidOperationException($"{Pair}: the 20 turns did not convert to 40 messages.");
        }
    }

    [Benchmark]
    public int Convert20Turns() => _converter.Convert(_target, _turns).Length;
}

internal static class Streams
{
    private const string Word = "word ";

    public static DialectId Id(string label) => DialectLabels.TryParse(label, out var id) ? id : throw new ArgumentException(label);

    /// <summary>A request body, a streamed answer of <paramref name="tokens"/> deltas cut into its events, and its media type.</summary>
    public static (byte[] Body, byte[][] Chunks, string MediaType) For(DialectId dialect, int tokens)
    {
        var chunks = new List<string>();
        string body;
        var text = string.Concat(Enumerable.Repeat(Word, tokens));
        switch (dialect)
        {
            case DialectId.AnthropicMessages:
                body = """{"model":"claude-sonnet-4-5","max_tokens":1024,"system":"You are a terse assistant.","stream":true,"messages":[{"role":"user","content":"Question 21: what next?"}]}""";
                chunks.Add(Sse("message_start", """{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"""));
                chunks.Add(Sse("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"""));
                chunks.AddRange(Enumerable.Repeat(Sse("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word "}}"""), tokens));
                chunks.Add(Sse("content_block_stop", """{"type":"content_block_stop","index":0}"""));
                chunks.Add(Sse("message_delta", """{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"""));
                chunks.Add(Sse("message_stop", """{"type":"message_stop"}"""));
                return (Encoding.UTF8.GetBytes(body), Bytes(chunks), "text/event-stream");
            case DialectId.OpenAIResponses:
                body = """{"model":"gpt-4.1","instructions":"You are a terse assistant.","stream":true,"input":[{"role":"user","content":"Question 21: what next?"}]}""";
                var response = $$$"""{"id":"resp_1","object":"response","created_at":1741476542,"status":"completed","model":"gpt-4.1","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"{{{text}}}","annotations":[]}]}],"usage":{"input_tokens":36,"output_tokens":87,"total_tokens":123}}""";
                chunks.Add(Sse("response.created", """{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}}"""));
                chunks.Add(Sse("response.output_item.added", """{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}"""));
                chunks.AddRange(Enumerable.Repeat(Sse("response.output_text.delta", """{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"word "}"""), tokens));
                chunks.Add(Sse("response.output_text.done", $$"""{"type":"response.output_text.done","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"text":"{{text}}"}"""));
                chunks.Add(Sse("response.completed", $$$"""{"type":"response.completed","sequence_number":4,"response":{{{response}}}}"""));
                return (Encoding.UTF8.GetBytes(body), Bytes(chunks), "text/event-stream");
            case DialectId.OllamaChat:
                body = """{"model":"llama3.2","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Question 21: what next?"}]}""";
                chunks.AddRange(Enumerable.Repeat("""{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"word "},"done":false}""" + "\n", tokens));
                chunks.Add("""{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":4883583458,"prompt_eval_count":26,"eval_count":282}""" + "\n");
                return (Encoding.UTF8.GetBytes(body), Bytes(chunks), "application/x-ndjson");
            default:
                body = """{"model":"m","stream":true,"messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Question 21: what next?"}]}""";
                chunks.Add(Encoding.UTF8.GetString(Fixtures.Chunk("""{"role":"assistant","content":""}""", "null")));
                chunks.AddRange(Enumerable.Repeat(Encoding.UTF8.GetString(Fixtures.Chunk("""{"content":"word "}""", "null")), tokens));
                chunks.Add(Encoding.UTF8.GetString(Fixtures.Chunk("{}", "\"stop\"")));
                chunks.Add("data: [DONE]\n\n");
                return (Encoding.UTF8.GetBytes(body), Bytes(chunks), "text/event-stream");
        }
    }

    /// <summary>The stored messages of one turn with a question and a 20-word answer, as <paramref name="dialect"/> stores them.</summary>
    public static byte[] Turn(DialectId dialect, int i)
    {
        var answer = string.Concat(Enumerable.Repeat(Word, 20));
        return Encoding.UTF8.GetBytes(dialect switch
        {
            DialectId.AnthropicMessages => $$"""{"role":"user","content":"Question {{i}}: what next?"},{"role":"assistant","content":[{"type":"text","text":"{{answer}}"}]}""",
            DialectId.OpenAIResponses => $$"""{"role":"user","content":"Question {{i}}: what next?"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"{{answer}}"}]}""",
            _ => $$"""{"role":"user","content":"Question {{i}}: what next?"},{"role":"assistant","content":"{{answer}}"}""",
        });
    }

    private static string Sse(string type, string data) => $"event: {type}\ndata: {data}\n\n";

    private static byte[][] Bytes(List<string> chunks) => chunks.Select(Encoding.UTF8.GetBytes).ToArray();
}
