using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;
using Mnemo.Proxy.Tests.WriteBack;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>
/// Tenants, malformed turns, size limits, what reaches the upstream and what the metrics say: each as an attacker or
/// an SRE would find it, against the real proxy, a real redis-server and the fake upstream.
/// </summary>
public sealed class HardeningTests : FunctionalTest
{
    [Test]
    public async Task KeyedHistory_NeverReachesARequestWithSeveralKeysOrNone()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("my secret plans"), session: "shared"));
        await WaitForTurnsAsync("shared", 1);

        var twoKeys = ProxyHost.Chat(UserTurn("two keys"), session: "shared");
        twoKeys.Headers.Remove("Authorization");
        twoKeys.Headers.TryAddWithoutValidation("Authorization", ["Bearer sk-test-key", "Bearer sk-other-key"]);
        var (ambiguous, ambiguousBody) = await SendAsync(proxy, twoKeys);

        var keyless = ProxyHost.Chat(UserTurn("what were my plans?"), session: "shared");
        keyless.Headers.Authorization = null;
        var (refused, refusedBody) = await SendAsync(proxy, keyless);

        Assert.That(ambiguous.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(ErrorCode(ambiguousBody), Is.EqualTo("ambiguous_credentials"));
        Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(ErrorCode(refusedBody), Is.EqualTo("missing_api_key"));
        Assert.That(Encoding.UTF8.GetString(refusedBody), Does.Contain("Mnemo:Tenancy:Mode"), "names the setting a keyless backend needs");
        Assert.That(Upstream.Requests, Has.Count.EqualTo(1), "neither reached the upstream, with or without the history");
        Assert.That(await Redis.Server.KeysAsync(pattern: "*{_:*").CountAsync(), Is.Zero, "nothing stored under a shared tenant");
        Assert.That(await Redis.Db.ListLengthAsync(TurnsKey("shared")), Is.EqualTo(1));
    }

    [TestCase("""{"model":"gpt-4o-mini","messages":[]}""")]
    [TestCase("""{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."}]}""")]
    [TestCase("""{"model":"gpt-4o-mini","messages":[{"role":"developer","content":"Be brief."},{"role":"system","content":"Really."}]}""")]
    public async Task RequestWithNothingNewToRemember_IsForwardedWithItsHistory_ButStoresNoTurn(string body)
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!"), session: "noinput"));
        await WaitForTurnsAsync("noinput", 1);

        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(body, session: "noinput"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("hit"));

        var (next, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("And now?"), session: "noinput"));
        Assert.That(Header(next, "X-Mnemo-Context-Turns"), Is.EqualTo("1"), "no answer-only turn was stored to be replayed");
        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[]
        {
            "You are a helpful assistant.", "Hello!", "Hello! How can I assist you today?", "And now?",
        }));
        await WaitForTurnsAsync("noinput", 2);
        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_turns_not_stored_total{reason=\"no_input\"}"), Is.EqualTo(1));
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_requests_total{dialect=\"openai-chat\",memory=\"hit\",outcome=\"completed\"}"), Is.EqualTo(2));
    }

    [TestCase(new byte[] { 0xFF, 0xFE })]
    [TestCase(new byte[] { 0xC3, 0x28 })]
    [TestCase(new byte[] { 0xED, 0xA0, 0x80 })]
    [TestCase(new byte[] { 0xC0, 0xAF })]
    public async Task InvalidUtf8InContent_Is400_AndNothingIsStoredOrForwarded(byte[] bad)
    {
        await using var proxy = await StartProxyAsync();
        var body = Encoding.UTF8.GetBytes("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi X there"}]}""").ToList();
        var at = body.IndexOf((byte)'X');
        body.RemoveAt(at);
        body.InsertRange(at, bad);
        var request = ProxyHost.Chat("", session: "utf8");
        request.Content = new ByteArrayContent(body.ToArray());
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");

        var (response, responseBody) = await SendAsync(proxy, request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(ErrorCode(responseBody), Is.EqualTo("invalid_request_body"));
        Assert.That(Encoding.UTF8.GetString(responseBody), Does.Contain("UTF-8"));
        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task TurnOverMaxTurnBytes_IsAnsweredButNotStored_CountedAsCompleted()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Memory:MaxTurnBytes"] = "65536" });
        var large = new string('a', 100_000);
        var (response, body) = await SendAsync(proxy, ProxyHost.Chat(UserTurn(large, stream: true), session: "large"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(body, Is.EqualTo(Upstream.Fixture("stream.sse")), "the answer reached the client whole");

        // An answer that alone takes the turn over the limit: input just under it.
        var (nearly, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn(new string('b', 65_300)), session: "large"));
        Assert.That(nearly.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var (small, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("small"), session: "large"));
        Assert.That(Header(small, "X-Mnemo-Memory"), Is.EqualTo("empty"), "neither large turn was stored");
        Assert.That(Upstream.LastRequest.Body.Length, Is.LessThan(1000), "the next small request goes upstream small");
        await WaitForTurnsAsync("large", 1);

        var metrics = await proxy.Management.GetStringAsync("/metrics");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_turns_not_stored_total{reason=\"too_large\"}"), Is.EqualTo(2));
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_requests_total{dialect=\"openai-chat\",memory=\"empty\",outcome=\"completed\"}"), Is.EqualTo(3),
            "a 200 whose turn was too large to store is a completed request, not an upstream error");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_requests_total{dialect=\"openai-chat\",memory=\"empty\",outcome=\"upstream_error\"}"), Is.NaN, "no such series");
    }

    [Test]
    public async Task InjectedHistory_IsBoundedByMaxContextBytes_NewestTurnsFirst()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Memory:MaxContextBytes"] = "100000" });
        for (var i = 0; i < 5; i++)
        {
            await SendAsync(proxy, ProxyHost.Chat(UserTurn($"turn {i} " + new string('x', 40_000)), session: "bytes"));
        }

        await WaitForTurnsAsync("bytes", 5);
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("which turns do you see?"), session: "bytes"));

        Assert.That(Header(response, "X-Mnemo-Context-Turns"), Is.EqualTo("2"), "two 40 KB turns fit in 100,000 bytes, three do not");
        Assert.That(Upstream.LastRequest.Body.Length, Is.LessThan(100_000 + 1_000));
        Assert.That(Upstream.LastRequest.Messages().Where(m => m.Role == "user").Select(m => m.Content![..6]),
            Is.EqualTo(new[] { "turn 3", "turn 4", "which " }));
    }

    [Test]
    public async Task SessionAndModeHeaders_NeverReachTheUpstream_UnlessForwardIsOn()
    {
        await using (var proxy = await StartProxyAsync())
        {
            var memory = ProxyHost.Chat(UserTurn("hi"), session: "private-user-42");
            memory.Headers.Add("X-Mnemo-Mode", "inject");
            memory.Headers.Add("X-Mnemo-Consistency", "replica");
            await SendAsync(proxy, memory);
            var passThrough = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "X-Session-Id", "private-user-42" } } };
            await SendAsync(proxy, passThrough);

            foreach (var request in Upstream.Requests)
            {
                Assert.That(request.Headers.Keys, Has.None.EqualTo("X-Session-Id").IgnoreCase
                    .And.None.EqualTo("X-Mnemo-Mode").IgnoreCase.And.None.EqualTo("X-Mnemo-Consistency").IgnoreCase, request.Path);
            }
        }

        Upstream.Reset();
        await using var forwarding = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Session:Forward"] = "true" });
        await SendAsync(forwarding, ProxyHost.Chat(UserTurn("hi"), session: "forwarded"));
        Assert.That(Upstream.LastRequest.Headers["X-Session-Id"], Is.EqualTo("forwarded"));
    }

    [TestCase("application/x-www-form-urlencoded", "model=gpt-4o-mini&messages=hi")]
    [TestCase("text/plain", "just text")]
    [TestCase("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n")]
    public async Task NonJsonBody_OnAChatPath_IsForwardedUntouched_WithoutMemory(string contentType, string body)
    {
        await using var proxy = await StartProxyAsync();
        var request = ProxyHost.Chat("", session: "form");
        request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);

        var (response, _) = await SendAsync(proxy, request);

        Assert.That(Upstream.LastRequest.Body, Is.EqualTo(Encoding.UTF8.GetBytes(body)), "byte for byte");
        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("off"));
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task CompressedJsonBody_Is415InTheDialectsShape_AndNothingIsForwarded()
    {
        await using var proxy = await StartProxyAsync();
        using var gzipped = new MemoryStream();
        await using (var gzip = new System.IO.Compression.GZipStream(gzipped, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
        {
            await gzip.WriteAsync(Encoding.UTF8.GetBytes(UserTurn("hi")));
        }

        var request = ProxyHost.Chat("", session: "gzip");
        request.Content = new ByteArrayContent(gzipped.ToArray());
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Content.Headers.ContentEncoding.Add("gzip");

        var (response, body) = await SendAsync(proxy, request);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.UnsupportedMediaType));
        Assert.That(ErrorCode(body), Is.EqualTo("unsupported_content_encoding"));
        Assert.That(Upstream.Requests, Is.Empty);
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    [Test]
    public async Task ClientLeavingMidBody_CountsAsClientAborted_AndKestrelRejects_AreCounted()
    {
        await using var proxy = await StartProxyAsync();

        // Headers promise 1,000 bytes; 10 arrive, then the client goes.
        using (var client = new TcpClient())
        {
            await client.ConnectAsync(proxy.ProxyUrl.Host, proxy.ProxyUrl.Port);
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test-key\r\nX-Session-Id: left\r\n" +
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":"));
            await Task.Delay(300);
        }

        // A header value with a bare CR: Kestrel refuses it before Mnemo sees it.
        using (var client = new TcpClient())
        {
            await client.ConnectAsync(proxy.ProxyUrl.Host, proxy.ProxyUrl.Port);
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Session-Id: a\rb\r\nContent-Length: 0\r\n\r\n"));
            var reply = new byte[256];
            var read = await stream.ReadAsync(reply);
            Assert.That(Encoding.ASCII.GetString(reply, 0, read), Does.StartWith("HTTP/1.1 400"));
        }

        var metrics = await Eventually.ValueAsync(
            () => proxy.Management.GetStringAsync("/metrics"),
            m => WriteBackTests.Metric(m, "mnemo_requests_total{dialect=\"openai-chat\",memory=\"off\",outcome=\"client_aborted\"}") == 1
                && WriteBackTests.Metric(m, "mnemo_requests_total{dialect=\"other\",memory=\"off\",outcome=\"rejected\"}") == 1,
            "the client that left counted client_aborted, the malformed request rejected");
        Assert.That(WriteBackTests.Metric(metrics, "mnemo_requests_total{dialect=\"openai-chat\",memory=\"off\",outcome=\"rejected\"}"), Is.NaN, "no such series");
        Assert.That(await KeyCountAsync(), Is.Zero);
    }

    private static string? ErrorCode(byte[] body) =>
        JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString();
}
