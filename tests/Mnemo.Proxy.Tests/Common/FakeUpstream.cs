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
/// The request path picks the dialect (its fixture folder): <c>…/chat/completions</c> OpenAIChat, <c>…/messages</c>
/// AnthropicMessages, <c>…/responses</c> OpenAIResponses, <c>/api/chat</c> OllamaChat. A streaming request (Ollama
/// streams unless <c>"stream": false</c>) gets the dialect's stream fixture (SSE, or NDJSON for Ollama), any other its JSON fixture.
/// Like the providers, it first checks the conversation of a POST to one of those paths and answers an invalid one with the
/// API's 400 (<see cref="ValidatesRequests"/>).
/// </summary>
public sealed class FakeUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly ConcurrentQueue<long> _eventTimes = new();
    private int _answers;
    private readonly ConcurrentQueue<string> _rejections = new();
    private readonly ConcurrentDictionary<string, JsonElement> _storedItems = new(StringComparer.Ordinal);

    private FakeUpstream(WebApplication app)
    {
        _app = app;
    }

    public string Url { get; private set; } = "";

    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    public RecordedRequest LastRequest => _requests.Last();

    private static readonly Dictionary<string, (string Stream, string Json)> s_defaults = new()
    {
        ["OpenAIChat"] = ("stream.sse", "completion.json"),
        ["AnthropicMessages"] = ("stream.sse", "message.json"),
        ["OpenAIResponses"] = ("stream.sse", "response.json"),
        ["OllamaChat"] = ("stream.ndjson", "chat.json"),
    };

    private readonly ConcurrentDictionary<string, (string Stream, string Json)> _fixtures = new(s_defaults);

    /// <summary>The OpenAI Chat stream fixture (see <see cref="Answer"/> for every dialect).</summary>
    public string StreamFixture
    {
        get => _fixtures["OpenAIChat"].Stream;
        set => Answer("OpenAIChat", stream: value);
    }

    /// <summary>The OpenAI Chat JSON fixture (see <see cref="Answer"/> for every dialect).</summary>
    public string JsonFixture
    {
        get => _fixtures["OpenAIChat"].Json;
        set => Answer("OpenAIChat", json: value);
    }

    /// <summary>Pause before each SSE event after the first.</summary>
    public TimeSpan EventDelay { get; set; }

    /// <summary>Status and body for every request instead of the fixtures (e.g. an upstream 500).</summary>
    public (int Status, string Fixture)? Failure { get; set; }

    /// <summary>
    /// Bytes to answer every request with, as <c>application/json</c>, instead of the fixtures (e.g. an answer that is not
    /// valid UTF-8, which no fixture file should hold).
    /// </summary>
    public byte[]? RawJsonAnswer { get; set; }

    /// <summary>
    /// Consulted first for every request: a status and a JSON body to answer it with, or null for the usual answer
    /// (e.g. to answer Mnemo's background summary call with a fixed text while chat requests get the fixtures).
    /// </summary>
    public Func<RecordedRequest, (int Status, string Json)?>? Override { get; set; }

    /// <summary>
    /// Answers, as the provider would, a 400 in its API's error shape to a conversation that breaks the API's rules
    /// (<see cref="ProviderRules"/>), so that a test forwarding an invalid conversation fails. Off only for a test that
    /// forwards a client's own invalid conversation on purpose.
    /// </summary>
    public bool ValidatesRequests { get; set; } = true;

    /// <summary>
    /// An output item of a Responses answer this fake gave, by its id, as the provider stores it (<c>store</c> is on by
    /// default) and resolves an <c>item_reference</c> to it; null for an id it never answered with. The rules read
    /// references through it (<see cref="ProviderRules.OpenAIResponses(JsonElement, Func{string, JsonElement?})"/>).
    /// </summary>
    public JsonElement? StoredItem(string id) => _storedItems.TryGetValue(id, out var item) ? item : null;

    /// <summary>Every request answered with a rule's 400, as "METHOD path: message", oldest first.</summary>
    public IReadOnlyList<string> Rejections => [.. _rejections];

    /// <summary>Close the connection abruptly after this many SSE events.</summary>
    public int? AbortAfterEvents { get; set; }

    /// <summary>
    /// Give the ids in each fixture answer (<c>msg_…</c>, <c>resp_…</c>, <c>fc_…</c>, <c>rs_…</c>, <c>call_…</c>,
    /// <c>toolu_…</c>, <c>chatcmpl-…</c>) a suffix of their own per answer, as a provider's ids are unique: a conversation
    /// of several fixture answers otherwise repeats one call or item id, which the providers reject.
    /// </summary>
    public bool UniqueIds { get; set; }

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

    /// <summary>A fixture's bytes (OpenAI Chat's folder unless <paramref name="dialect"/> names another).</summary>
    public byte[] Fixture(string name, string dialect = "OpenAIChat") => File.ReadAllBytes(FixturePath(dialect, name));

    /// <summary>The fixture folder of a request path.</summary>
    public static string DialectOf(string path) =>
        path.EndsWith("/api/chat", StringComparison.Ordinal) ? "OllamaChat"
        : path.EndsWith("/messages", StringComparison.Ordinal) ? "AnthropicMessages"
        : path.EndsWith("/responses", StringComparison.Ordinal) ? "OpenAIResponses"
        : "OpenAIChat";

    /// <summary>Sets the fixtures a dialect answers with from now on (null keeps the current one).</summary>
    public void Answer(string dialect, string? stream = null, string? json = null) =>
        _fixtures.AddOrUpdate(dialect, _ => (stream ?? s_defaults[dialect].Stream, json ?? s_defaults[dialect].Json),
            (_, current) => (stream ?? current.Stream, json ?? current.Json));

    public void Reset()
    {
        _requests.Clear();
        _eventTimes.Clear();
        _rejections.Clear();
        _storedItems.Clear();
        // Each test numbers its answers from 1: its ids are still unique within it, and its expectations do not depend on the order tests run in.
        Interlocked.Exchange(ref _answers, 0);
        ValidatesRequests = true;
        EventDelay = TimeSpan.Zero;
        Failure = null;
        RawJsonAnswer = null;
        Override = null;
        AbortAfterEvents = null;
        CompressWhenAsked = true;
        UniqueIds = false;
        foreach (var (dialect, fixtures) in s_defaults)
        {
            _fixtures[dialect] = fixtures;
        }

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
        var bytes = body.ToArray();
        var path = context.Request.Path.Value ?? "";
        var rejection = ValidatesRequests && HttpMethods.IsPost(context.Request.Method) && ProviderRules.ApiOf(path) is { } api
            ? ProviderRules.Check(api, bytes, StoredItem)
            : null;
        var recorded = new RecordedRequest(
            context.Request.Method,
            context.Request.Path + context.Request.QueryString,
            context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
            bytes)
        {
            Rejection = rejection,
        };
        _requests.Enqueue(recorded);
        var dialect = DialectOf(path);
        var fixtures = _fixtures[dialect];

        if (rejection is not null)
        {
            _rejections.Enqueue($"{recorded.Method} {recorded.Path}: {rejection}");
            await AnswerJsonAsync(context, StatusCodes.Status400BadRequest, Encoding.UTF8.GetBytes(ProviderRules.ErrorBody(dialect, rejection)));
            return;
        }

        if (Override?.Invoke(recorded) is { } overridden)
        {
            await AnswerJsonAsync(context, overridden.Status, Encoding.UTF8.GetBytes(overridden.Json));
            return;
        }

        if (Failure is { } failure)
        {
            context.Response.StatusCode = failure.Status;
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(Fixture(failure.Fixture, dialect));
            LastResponseEnded = Stopwatch.GetTimestamp();
            return;
        }

        if (RawJsonAnswer is { } raw)
        {
            await AnswerJsonAsync(context, StatusCodes.Status200OK, raw);
            return;
        }

        if (dialect == "OllamaChat" ? recorded.StreamsByDefault : recorded.IsStreaming)
        {
            var stream = Unique(Fixture(fixtures.Stream, dialect));
            StoreItems(dialect, stream);
            await StreamAsync(context, stream, ndjson: dialect == "OllamaChat");
        }
        else
        {
            var payload = Unique(Fixture(fixtures.Json, dialect));
            StoreItems(dialect, payload);
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

    private async Task StreamAsync(HttpContext context, byte[] fixture, bool ndjson)
    {
        context.Response.ContentType = ndjson ? "application/x-ndjson" : "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var events = ndjson ? SplitLines(fixture) : SplitEvents(fixture);
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

    private async Task AnswerJsonAsync(HttpContext context, int status, byte[] json)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = json.Length;
        await context.Response.Body.WriteAsync(json);
        LastResponseEnded = Stopwatch.GetTimestamp();
    }

    private byte[] Unique(byte[] fixture)
    {
        if (!UniqueIds)
        {
            return fixture;
        }

        var answer = Interlocked.Increment(ref _answers);
        // Values only: a property name of the same form ("call_id") is left as it is (the atomic group keeps the match from
        // backing off to a shorter one that is not followed by the colon).
        var text = System.Text.RegularExpressions.Regex.Replace(
            Encoding.UTF8.GetString(fixture), @"\b(?>(?:msg|resp|fc|rs|call|toolu)_[A-Za-z0-9]+|chatcmpl-[A-Za-z0-9]+)(?!""\s*:)", m => $"{m.Value}u{answer}");
        return Encoding.UTF8.GetBytes(text);
    }

    /// <summary>Keeps the output items of a Responses answer (a JSON response, or the responses of its SSE events) by id.</summary>
    private void StoreItems(string dialect, byte[] answer)
    {
        if (dialect != "OpenAIResponses")
        {
            return;
        }

        var text = Encoding.UTF8.GetString(answer);
        IEnumerable<string> payloads = text.TrimStart().StartsWith('{')
            ? [text]
            : text.Split('\n').Where(line => line.StartsWith("data: ", StringComparison.Ordinal)).Select(line => line["data: ".Length..]);
        foreach (var payload in payloads)
        {
            try
            {
                using var document = JsonDocument.Parse(payload);
                var root = document.RootElement;
                var response = root.TryGetProperty("response", out var inner) ? inner : root;
                if (response.ValueKind != JsonValueKind.Object || !response.TryGetProperty("output", out var output) || output.ValueKind != JsonValueKind.Array)
                {
                    continue;
                }

                foreach (var item in output.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String)
                    {
                        _storedItems[id.GetString()!] = item.Clone();
                    }
                }
            }
            catch (JsonException)
            {
            }
        }
    }

    /// <summary>Splits an NDJSON fixture into its lines, each with its line feed.</summary>
    public static List<byte[]> SplitLines(byte[] ndjson)
    {
        var lines = new List<byte[]>();
        var start = 0;
        while (start < ndjson.Length)
        {
            var end = Array.IndexOf(ndjson, (byte)'\n', start);
            var length = end < 0 ? ndjson.Length - start : end - start + 1;
            lines.Add(ndjson.AsSpan(start, length).ToArray());
            start += length;
        }

        return lines;
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

    /// <summary>The provider's message the fake answered this request's invalid conversation with (a 400); null when it did not.</summary>
    public string? Rejection { get; init; }

    public bool IsStreaming => Stream == true;

    /// <summary>Ollama's rule: a request streams unless it says <c>"stream": false</c>.</summary>
    public bool StreamsByDefault => Stream != false;

    /// <summary>The body's <c>stream</c> value; null when absent or the body is not a JSON object.</summary>
    public bool? Stream
    {
        get
        {
            try
            {
                using var document = JsonDocument.Parse(Body);
                return document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("stream", out var stream)
                    ? stream.ValueKind == JsonValueKind.True
                    : null;
            }
            catch (JsonException)
            {
                return null;
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
