using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Admin;

/// <summary>What an operator (admin calls on the management port) and a client (one turn per dialect) send, for the admin API tests.</summary>
internal static class AdminApiClient
{
    public const string Token = "admin-token-0123456789abcdef";

    /// <summary>The four dialects: label as exported, request path, a model name.</summary>
    public static readonly (string Label, string Path, string Model)[] AllDialects =
    [
        ("openai-chat", "/v1/chat/completions", "gpt-4o-mini"),
        ("anthropic-messages", "/v1/messages", "claude-sonnet-4-5"),
        ("openai-responses", "/v1/responses", "gpt-4.1"),
        ("ollama-chat", "/api/chat", "llama3.2"),
    ];

    public static Dictionary<string, string?> Settings(params (string Key, string? Value)[] more)
    {
        var settings = new Dictionary<string, string?> { ["Mnemo:Admin:Token"] = Token };
        foreach (var (key, value) in more)
        {
            settings[key] = value;
        }

        return settings;
    }

    /// <summary>An admin call: status, the JSON body (default when it is not JSON) and the response for its headers.</summary>
    public static async Task<AdminReply> CallAsync(
        HttpClient client, HttpMethod method, string path, string? token = Token, Action<HttpRequestMessage>? configure = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        configure?.Invoke(request);
        var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        JsonElement json = default;
        try
        {
            json = JsonDocument.Parse(body).RootElement.Clone();
        }
        catch (JsonException)
        {
        }

        return new AdminReply(response, body, json);
    }

    public static Task<AdminReply> GetAsync(ProxyHost proxy, string path, string? token = Token, Action<HttpRequestMessage>? configure = null) =>
        CallAsync(proxy.Management, HttpMethod.Get, path, token, configure);

    public static Task<AdminReply> DeleteAsync(ProxyHost proxy, string path, string? token = Token) =>
        CallAsync(proxy.Management, HttpMethod.Delete, path, token);

    public static string SessionPath(string tenant, string session) =>
        $"/admin/v1/tenants/{Uri.EscapeDataString(tenant)}/sessions/{Uri.EscapeDataString(session)}";

    /// <summary>A client request of <paramref name="dialect"/> (a label of <see cref="AllDialects"/>) carrying one user message.</summary>
    public static HttpRequestMessage Turn(string dialect, string text, bool stream, string session, string apiKey = FunctionalTest.ApiKey, string? model = null)
    {
        var (_, path, defaultModel) = AllDialects.Single(d => d.Label == dialect);
        model ??= defaultModel;
        object[] messages = [new { role = "user", content = text }];
        object body = dialect switch
        {
            "anthropic-messages" => new { model, max_tokens = 256, messages, stream },
            "openai-responses" => new { model, input = messages, stream },
            _ => new { model, messages, stream },
        };
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        request.Headers.Add("X-Session-Id", session);
        return request;
    }

    /// <summary>Sends a client turn through the proxy port and reads the whole answer; the turn is queued once this returns.</summary>
    public static Task SendTurnAsync(ProxyHost proxy, HttpRequestMessage request) => SendTurnAsync(proxy.Client, request);

    /// <inheritdoc cref="SendTurnAsync(ProxyHost, HttpRequestMessage)"/>
    public static async Task SendTurnAsync(HttpClient client, HttpRequestMessage request)
    {
        using (request)
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), body);
        }
    }

    /// <summary>Every string inside a JSON value, concatenated: where a test looks for the text it sent or the answer's.</summary>
    public static string Strings(JsonElement value) => JsonText.Strings(value);

    public static string IsoTime(long unixMs) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}

internal sealed record AdminReply(HttpResponseMessage Response, byte[] Body, JsonElement Json)
{
    public HttpStatusCode Status => Response.StatusCode;

    public string Text => Encoding.UTF8.GetString(Body);

    /// <summary>The <c>error.code</c> of an error body, or null.</summary>
    public string? ErrorCode =>
        Json.ValueKind == JsonValueKind.Object && Json.TryGetProperty("error", out var error) && error.TryGetProperty("code", out var code)
            ? code.GetString()
            : null;
}
