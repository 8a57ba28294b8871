using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.Benchmarks.Micro;

/// <summary>The per-request hot paths, with allocations: run with <c>micro</c> (see the README's Performance section).</summary>
[MemoryDiagnoser]
public class SpliceBenchmarks
{
    private readonly OpenAIChatDialect _dialect = new();
    private readonly SplicePlan _plan = new();
    private byte[] _body = [];
    private StoredTurn[] _stored = [];
    private byte[] _destination = [];

    [GlobalSetup]
    public void Setup()
    {
        _body = Encoding.UTF8.GetBytes("""{"model":"m","stream":true,"messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Question 21: what next?"}]}""");
        _stored = Enumerable.Range(0, 20).Select(i => Fixtures.StoredTurn(i)).ToArray();
        _destination = new byte[_body.Length + 8192];
    }

    /// <summary>Find the messages array, choose 20 turns, write the spliced body: what a memory request does to its body.</summary>
    [Benchmark]
    public int ParseAndSplice20Turns()
    {
        _ = _dialect.ParseRequest(_body, fullHistory: false, _plan);
        var window = ContextWindow.Choose(_stored, [], 20, 0);
        var segments = window.Segments(_dialect, null!, out var count, out _);
        var written = Splice.Write(_body, _plan, segments.AsSpan(0, count), _destination);
        window.Return(segments);
        return written;
    }

    [Benchmark]
    public int ParseRequestOnly() => _dialect.ParseRequest(_body, fullHistory: false, _plan).Outcome == ParseOutcome.Splice ? _plan.Inputs.Count : -1;
}

/// <summary>The response tee's parser over a streamed answer, fed chunk by chunk as YARP copies it.</summary>
[MemoryDiagnoser]
public class TeeParserBenchmarks
{
    private readonly OpenAIChatDialect _dialect = new();
    private byte[][] _chunks = [];
    private byte[] _json = [];

    [Params(20, 500)]
    public int Tokens { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var chunks = new List<byte[]> { Fixtures.Chunk("""{"role":"assistant","content":""}""", "null") };
        for (var i = 0; i < Tokens; i++)
        {
            chunks.Add(Fixtures.Chunk("""{"content":"word "}""", "null"));
        }

        chunks.Add(Fixtures.Chunk("{}", "\"stop\""));
        chunks.Add("data: [DONE]\n\n"u8.ToArray());
        _chunks = [.. chunks];
        var content = string.Concat(Enumerable.Repeat("word ", Tokens));
        const string Head = "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"";
        const string Tail = "\",\"refusal\":null,\"annotations\":[]},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29}}";
        _json = Encoding.UTF8.GetBytes(Head + content + Tail);
    }

    [Benchmark]
    public bool Stream()
    {
        using var parser = _dialect.CreateResponseParser("text/event-stream")!;
        foreach (var chunk in _chunks)
        {
            parser.Feed(chunk);
        }

        parser.End();
        return parser.Completed;
    }

    [Benchmark]
    public bool Json()
    {
        using var parser = _dialect.CreateResponseParser("application/json")!;
        parser.Feed(_json);
        parser.End();
        return parser.Completed;
    }
}

/// <summary>From request headers to the Redis keys of the session.</summary>
[MemoryDiagnoser]
public class KeyBenchmarks
{
    private readonly SessionResolver _resolver = new(Options.Create(new SessionIdOptions()), Options.Create(new TenancyOptions()));
    private readonly DefaultHttpContext _context = new();

    [GlobalSetup]
    public void Setup()
    {
        _context.Request.Headers["X-Session-Id"] = "user-42.chat-7";
        _context.Request.Headers.Authorization = "Bearer sk-proj-0123456789abcdefghijklmnopqrstuvwxyz0123456789";
    }

    [Benchmark]
    public int ResolveSessionAndBuildKeys()
    {
        var session = _resolver.Resolve(_context.Request).Key!;
        return RedisKeys.Turns(session).ToString()!.Length + RedisKeys.Meta(session).ToString()!.Length;
    }
}

/// <summary>Encoding a completed turn, and locating a stored one (twenty of these per read).</summary>
[MemoryDiagnoser]
public class TurnCodecBenchmarks
{
    private byte[] _stored = [];

    [GlobalSetup]
    public void Setup() => _stored = Fixtures.Payload(0);

    [Benchmark]
    public int Encode() => Fixtures.Payload(1).Length;

    [Benchmark]
    public bool TryRead() => TurnCodec.TryRead(_stored, out _);
}

internal static class Fixtures
{
    public static byte[] Chunk(string delta, string finish) => Encoding.UTF8.GetBytes(
        $$"""data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1694268190,"model":"bench","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{{delta}},"logprobs":null,"finish_reason":{{finish}}}]}""" + "\n\n");

    public static byte[] Payload(int i) => TurnCodec.Encode(
        "0123456789abcdef0123456789abcdef", 1_700_000_000_000, DialectId.OpenAIChat, 40,
        new TokenUsage(100, 20, -1, -1), i,
        static (w, n) =>
        {
            w.WriteStartObject();
            w.WriteString("role", "user");
            w.WriteString("content", $"Question {n}: what next?");
            w.WriteEndObject();
            w.WriteStartObject();
            w.WriteString("role", "assistant");
            w.WriteString("content", "word word word word word word word word word word word word word word word word word word word word ");
            w.WriteEndObject();
        });

    public static StoredTurn StoredTurn(int i) => TurnCodec.TryRead(Payload(i), out var turn) ? turn : throw new InvalidOperationException();
}
