using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mnemo.Proxy.Benchmarks.Load;

/// <summary>
/// A fake OpenAI-compatible LLM with a configurable time to first byte, answer length and inter-token delay, run as its
/// own process so its work is not counted against the load generator's. Per request, headers override the defaults:
/// <c>X-Bench-Tokens</c>, <c>X-Bench-Ttfb-Ms</c>, <c>X-Bench-Token-Delay-Ms</c>, <c>X-Bench-Status</c>. A body containing
/// <c>"stream":true</c> gets SSE chunks in the Chat Completions shape, any other a chat.completion object.
/// </summary>
internal static class BenchUpstream
{
    private static readonly byte[] s_roleChunk = Chunk("""{"role":"assistant","content":""}""", "null");
    private static readonly byte[] s_tokenChunk = Chunk("""{"content":"word "}""", "null");
    private static readonly byte[] s_finishChunk = Chunk("{}", "\"stop\"");
    private static readonly byte[] s_usageChunk = Encoding.UTF8.GetBytes(
        "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"bench\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"total_tokens\":120}}\n\n");
    private static readonly byte[] s_done = "data: [DONE]\n\n"u8.ToArray();

    public static async Task RunAsync(int port, Defaults defaults)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.ListenLocalhost(port, o => o.Protocols = HttpProtocols.Http1);
        });
        var app = builder.Build();
        app.Run(context => HandleAsync(context, defaults));
        await app.RunAsync();
    }

    private static async Task HandleAsync(HttpContext context, Defaults defaults)
    {
        var stream = await ReadStreamFlagAsync(context.Request);
        var status = Header(context, "X-Bench-Status", 200);
        if (status != 200)
        {
            // An upstream error: the proxy reads history but has no answer to write back.
            context.Response.StatusCode = status;
            return;
        }

        var tokens = Header(context, "X-Bench-Tokens", defaults.Tokens);
        var ttfb = Header(context, "X-Bench-Ttfb-Ms", defaults.TtfbMs);
        var delay = Header(context, "X-Bench-Token-Delay-Ms", defaults.TokenDelayMs);
        if (ttfb > 0)
        {
            await Task.Delay(ttfb, context.RequestAborted);
        }

        var body = context.Response.Body;
        if (!stream)
        {
            var content = new StringBuilder(tokens * 5);
            for (var i = 0; i < tokens; i++)
            {
                content.Append("word ");
            }

            var json = Encoding.UTF8.GetBytes(
                $$$"""{"id":"chatcmpl-bench","object":"chat.completion","created":1741569952,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"{{{content}}}","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":{{{tokens}}},"total_tokens":{{{100 + tokens}}}}}""");
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = json.Length;
            await body.WriteAsync(json, context.RequestAborted);
            return;
        }

        context.Response.ContentType = "text/event-stream";
        await body.WriteAsync(s_roleChunk, context.RequestAborted);
        await body.FlushAsync(context.RequestAborted);
        for (var i = 0; i < tokens; i++)
        {
            if (delay > 0)
            {
                await Task.Delay(delay, context.RequestAborted);
            }

            await body.WriteAsync(s_tokenChunk, context.RequestAborted);
            await body.FlushAsync(context.RequestAborted);
        }

        await body.WriteAsync(s_finishChunk, context.RequestAborted);
        await body.WriteAsync(s_usageChunk, context.RequestAborted);
        await body.WriteAsync(s_done, context.RequestAborted);
    }

    private static async Task<bool> ReadStreamFlagAsync(HttpRequest request)
    {
        var reader = request.BodyReader;
        var found = false;
        while (true)
        {
            var result = await reader.ReadAsync();
            if (result.IsCompleted)
            {
                found = Contains(result.Buffer);
                reader.AdvanceTo(result.Buffer.End);
                return found;
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private static bool Contains(ReadOnlySequence<byte> buffer)
    {
        var bytes = buffer.IsSingleSegment ? buffer.FirstSpan : buffer.ToArray();
        return bytes.IndexOf("\"stream\":true"u8) >= 0;
    }

    private static int Header(HttpContext context, string name, int fallback) =>
        context.Request.Headers.TryGetValue(name, out var value) && int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed)
            ? parsed
            : fallback;

    private static byte[] Chunk(string delta, string finish) => Encoding.UTF8.GetBytes(
        $$"""data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1694268190,"model":"bench","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{{delta}},"logprobs":null,"finish_reason":{{finish}}}]}""" + "\n\n");

    public sealed record Defaults(int Tokens, int TtfbMs, int TokenDelayMs);
}
