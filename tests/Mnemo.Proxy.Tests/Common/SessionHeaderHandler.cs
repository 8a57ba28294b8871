namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// Puts the session header on every request an official SDK sends, the way a user wires it: through the
/// <see cref="HttpClient"/> the SDK is given, so the SDK's own request building stays untouched.
/// </summary>
public sealed class SessionHeaderHandler(string sessionId)
    : DelegatingHandler(new SocketsHttpHandler { UseProxy = false, AutomaticDecompression = System.Net.DecompressionMethods.None })
{
    public const string Header = "X-Session-Id";

    public string SessionId { get; } = sessionId;

    /// <summary>An <see cref="HttpClient"/> that sends <paramref name="sessionId"/> on every request.</summary>
    public static HttpClient Client(string sessionId, Uri? baseAddress = null) =>
        new(new SessionHeaderHandler(sessionId)) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        // Set, not added: an SDK retry resends the same message.
        request.Headers.Remove(Header);
        request.Headers.TryAddWithoutValidation(Header, SessionId);
        return base.SendAsync(request, cancellationToken);
    }
}
