using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// An LLM API on loopback that records every request and answers with the documented payloads under Fixtures/.
/// By default a request with <c>"stream": true</c> gets <see cref="StreamFixture"/> as SSE, any other gets <see cref="JsonFixture"/>.
/// </summary>
public sealed class FakeUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly ConcurrentQueue<long> _eventTimes = new();

    private FakeUpstream(WebApplication app)
    {
        _app = app;
    }

    public string Url { get; private set; } = "";

    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    public RecordedRequest LastRequest => _requests.Last();

    public string Dialect { get; set; } = "OpenAIChat";

    public string StreamFixture { get; set; } = "stream.sse";

    public string JsonFixture { get; set; } = "completion.json";

    /// <summary>Pause before each SSE event after the first.</summary>
    public TimeSpan EventDelay { get; set; }

    /// <summary>Status and body for every request instead of the fixtures (e.g. an upstream 500).</summary>
    public (int Status, string Fixture)? Failure { get; set; }

    /// <summary>Close the connection abruptly after this many SSE events.</summary>
    public int? AbortAfterEvents { get; set; }

    /// <summary>Compress responses when the request's Accept-Encoding allows gzip, as api.openai.com does.</summary>
    public bool CompressWhenAsked { get; set; } = true;

    /// <summary>Stopwatch timestamps at which each SSE event was flushed.</summary>
    public IReadOnlyList<long> EventTimes => [.. _eventTimes];

    /// <summary>Stopwatch timestamp at which the last response body finished.</summary>
    public long LastResponseEnded { get; private set; }

    public static async Task<FakeUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var upstream = new FakeUpstream(app);
        app.Run(upstream.HandleAsync);
        await app.StartAsync();
        upstream.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return upstream;
    }

    public static string FixturePath(string dialect, string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", dialect, name);

    public byte[] Fixture(string name) => File.ReadAllBytes(FixturePath(Dialect, name));

    public void Reset()
    {
        _requests.Clear();
        _eventTimes.Clear();
        EventDelay = TimeSpan.Zero;
        Failure = null;
        AbortAfterEvents = null;
        CompressWhenAsked = true;
        StreamFixture = "stream.sse";
        JsonFixture = "completion.json";
        LastResponseEnded = 0;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        var recorded = new RecordedRequest(
            context.Request.Method,
            context.Request.Path + context.Request.QueryString,
            context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
            body.ToArray());
        _requests.Enqueue(recorded);

        if (Failure is { } failure)
        {
            context.Response.StatusCode = failure.Status;
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(Fixture(failure.Fixture));
            LastResponseEnded = Stopwatch.GetTimestamp();
            return;
        }

        if (recorded.IsStreaming)
        {
            await StreamAsync(context);
        }
        else
        {
            var payload = Fixture(JsonFixture);
            context.Response.ContentType = "application/json";
            if (CompressWhenAsked && context.Request.Headers.AcceptEncoding.ToString().Contains("gzip", StringComparison.OrdinalIgnoreCase))
            {
                context.Response.Headers.ContentEncoding = "gzip";
                using var compressed = new MemoryStream();
                await using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
                {
                    await gzip.WriteAsync(payload);
                }

                payload = compressed.ToArray();
            }

            context.Response.ContentLength = payload.Length;
            await context.Response.Body.WriteAsync(payload);
        }

        LastResponseEnded = Stopwatch.GetTimestamp();
    }

    private async Task StreamAsync(HttpContext context)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var events = SplitEvents(Fixture(StreamFixture));
        await context.Response.StartAsync();
        for (var i = 0; i < events.Count; i++)
        {
            if (AbortAfterEvents is { } abortAfter && i == abortAfter)
            {
                context.Abort();
                return;
            }

            if (i > 0 && EventDelay > TimeSpan.Zero)
            {
                await Task.Delay(EventDelay, context.RequestAborted);
            }

            await context.Response.Body.WriteAsync(events[i], context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            _eventTimes.Enqueue(Stopwatch.GetTimestamp());
        }

        await context.Response.CompleteAsync();
    }

    /// <summary>Splits an SSE fixture into its events, each with its trailing blank line.</summary>
    public static List<byte[]> SplitEvents(byte[] sse)
    {
        var events = new List<byte[]>();
        var start = 0;
        var text = sse.AsSpan();
        while (start < text.Length)
        {
            var end = text[start..].IndexOf("\n\n"u8);
            var length = end < 0 ? text.Length - start : end + 2;
            events.Add(text.Slice(start, length).ToArray());
            start += length;
        }

        return events;
    }
}

/// <summary>A request as the fake upstream received it.</summary>
public sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public bool IsStreaming
    {
        get
        {
            try
            {
                using var document = JsonDocument.Parse(Body);
                return document.RootElement.ValueKind == JsonValueKind.Object
                    && document.RootElement.TryGetProperty("stream", out var stream)
                    && stream.ValueKind == JsonValueKind.True;
            }
            catch (JsonException)
            {
                return false;
            }
        }
    }

    /// <summary>The <c>messages</c> array as (role, content-as-JSON-text) pairs.</summary>
    public IReadOnlyList<(string Role, string Content)> Messages(string arrayName = "messages")
    {
        using var document = JsonDocument.Parse(Body);
        return document.RootElement.GetProperty(arrayName).EnumerateArray()
            .Select(m => (m.GetProperty("role").GetString()!, m.TryGetProperty("content", out var c) ? ContentText(c) : ""))
            .ToList();
    }

    private static string ContentText(JsonElement content) =>
        content.ValueKind == JsonValueKind.String ? content.GetString()! : content.GetRawText();
}
