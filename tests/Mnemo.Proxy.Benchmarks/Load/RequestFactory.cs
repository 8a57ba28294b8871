using System.Net.Http.Headers;
using System.Text;

namespace Mnemo.Proxy.Benchmarks.Load;

/// <summary>Builds the benchmark's Chat Completions requests for one scenario and checks the responses.</summary>
internal sealed class RequestFactory
{
    public const string ApiKey = "sk-bench";

    private readonly Uri _target;
    private readonly string? _mode;
    private readonly string _sessionPrefix;

    /// <param name="mode">null: straight to the upstream; "off" or "inject": through Mnemo with that X-Mnemo-Mode.</param>
    public RequestFactory(Uri target, string? mode, bool stream, string sessionPrefix, int sessions = 32)
    {
        _target = target;
        _mode = mode;
        Stream = stream;
        _sessionPrefix = sessionPrefix;
        Sessions = sessions;
    }

    public bool Stream { get; }

    public int Sessions { get; }

    public int? Tokens { get; init; }

    public int? TokenDelayMs { get; init; }

    /// <summary>When set, the body is uploaded in two halves this far apart (a slow client).</summary>
    public TimeSpan UploadPause { get; init; }

    /// <summary>Each request opens a new session instead of cycling through <see cref="Sessions"/>.</summary>
    public bool SessionPerRequest { get; init; }

    /// <summary>The X-Mnemo-Consistency value to send ("replica" or "strict"), or null for the proxy's default.</summary>
    public string? Consistency { get; init; }

    /// <summary>The X-Mnemo-Memory value every response must carry, or null.</summary>
    public string? ExpectMemory { get; init; }

    public HttpRequestMessage Create(int worker, int sequence)
    {
        var body = Encoding.UTF8.GetBytes(
            $$"""{"model":"bench","stream":{{(Stream ? "true" : "false")}},"messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Question {{sequence}}: what next?"}]}""");
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_target, "/v1/chat/completions"))
        {
            Content = UploadPause > TimeSpan.Zero ? new PausedContent(body, UploadPause) : new ByteArrayContent(body),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
        request.Headers.Add("X-Session-Id", SessionPerRequest ? $"{_sessionPrefix}-{worker}-{sequence}" : $"{_sessionPrefix}-{worker % Sessions}");
        if (_mode is not null)
        {
            request.Headers.Add("X-Mnemo-Mode", _mode);
        }

        if (Consistency is not null)
        {
            request.Headers.Add("X-Mnemo-Consistency", Consistency);
        }

        if (Tokens is { } tokens)
        {
            request.Headers.Add("X-Bench-Tokens", tokens.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (TokenDelayMs is { } delay)
        {
            request.Headers.Add("X-Bench-Token-Delay-Ms", delay.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return request;
    }

    public bool Check(HttpResponseMessage response) =>
        ExpectMemory is null
        || (response.Headers.TryGetValues("X-Mnemo-Memory", out var values) && values.FirstOrDefault() == ExpectMemory);

    /// <summary>A body sent in two halves with a pause between: the upload a slow or distant client makes.</summary>
    private sealed class PausedContent(byte[] body, TimeSpan pause) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            var half = body.Length / 2;
            await stream.WriteAsync(body.AsMemory(0, half));
            await stream.FlushAsync();
            await Task.Delay(pause);
            await stream.WriteAsync(body.AsMemory(half));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = body.Length;
            return true;
        }
    }
}
