using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// Base of the functional tests: one real redis-server and one fake upstream per fixture, reset before each test;
/// each test starts its own proxy.
/// </summary>
public abstract class FunctionalTest
{
    public const string ApiKey = "sk-test-key";

    protected RedisServer Redis { get; private set; } = null!;

    protected FakeUpstream Upstream { get; private set; } = null!;

    [OneTimeSetUp]
    public async Task StartServersAsync()
    {
        Redis = await RedisServer.StartAsync();
        Upstream = await FakeUpstream.StartAsync();
    }

    [OneTimeTearDown]
    public async Task StopServersAsync()
    {
        await Upstream.DisposeAsync();
        await Redis.DisposeAsync();
    }

    [SetUp]
    public async Task ResetServersAsync()
    {
        Upstream.Reset();
        if (!Redis.IsRunning)
        {
            await Redis.StartAsync(CancellationToken.None);
        }

        await Redis.FlushAsync();
    }

    /// <summary>
    /// Fails a test whose forwarded conversation the fake upstream rejected as the provider would, even when the test
    /// never looked at that response's status (a summary call, a request whose answer it ignores).
    /// </summary>
    [TearDown]
    public void NoRequestRejected() =>
        Assert.That(Upstream.Rejections, Is.Empty, "the fake upstream rejected a forwarded conversation as the provider would");

    protected Task<ProxyHost> StartProxyAsync(
        IDictionary<string, string?>? settings = null, string? redis = "", bool waitUntilReady = true, Action<IServiceCollection>? services = null) =>
        ProxyHost.StartAsync(Upstream.Url, redis == "" ? Redis.ConnectionString : redis, settings, waitUntilReady, services);

    /// <summary>
    /// Until the proxy's session cache serves (its invalidation subscription is confirmed, shortly after start): before
    /// that every read goes to Redis and nothing is cached.
    /// </summary>
    protected static Task CacheServingAsync(ProxyHost proxy) =>
        Eventually.TrueAsync(
            async () => WriteBack.WriteBackTests.Metric(await proxy.Management.GetStringAsync("/metrics"), "mnemo_cache_subscription_up") == 1,
            "the session cache to serve");

    /// <summary>A proxy whose session cache serves (see <see cref="CacheServingAsync"/>).</summary>
    protected async Task<ProxyHost> ServingProxyAsync(IDictionary<string, string?>? settings = null, string? redis = "")
    {
        var proxy = await StartProxyAsync(settings, redis);
        try
        {
            await CacheServingAsync(proxy);
            return proxy;
        }
        catch
        {
            await proxy.DisposeAsync();
            throw;
        }
    }

    /// <summary>The tenant of an API key as the contract defines it: hex of the first 16 bytes of SHA-256.</summary>
    protected static string Tenant(string apiKey) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(apiKey)).AsSpan(0, 16));

    protected static string TurnsKey(string session, string apiKey = ApiKey) => $"mnemo:v1:{{{Tenant(apiKey)}:{session}}}:turns";

    protected static string MetaKey(string session, string apiKey = ApiKey) => $"mnemo:v1:{{{Tenant(apiKey)}:{session}}}:meta";

    protected Task<long> WaitForTurnsAsync(string session, long expected, string apiKey = ApiKey) =>
        Eventually.ValueAsync(() => Redis.Db.ListLengthAsync(TurnsKey(session, apiKey)), n => n == expected, $"{expected} stored turns");

    /// <summary>
    /// Until the proxy is done with the <paramref name="requests"/> requests it has been sent since it started: every
    /// turn of them is in Redis, or never will be. Then "nothing was stored" is a fact, not a guess about how late a
    /// write could be.
    /// </summary>
    /// <remarks>
    /// <para>
    /// When a response completes, the middleware first hands its turn to the write-back queue (or drops it), and only then
    /// counts the request in <c>mnemo_requests_total</c>; <c>mnemo_writeback_queue_depth</c> holds a turn from then until
    /// the writer has its reply from Redis, or drops it. So: every request counted, and after that the queue empty.
    /// </para>
    /// <para>
    /// The total since the start, not a count taken before the request: a request's count can lag its own turn's write
    /// (the test may see the turn in Redis first), so a count taken then could be short by one, and the next request's
    /// barrier would be passed by the earlier one. The depth is read in a later scrape than the count: a scrape reads the
    /// gauge before the counters, so the one that shows the count may predate the last request's hand-off.
    /// </para>
    /// </remarks>
    protected static async Task SettledAsync(HttpClient management, int requests)
    {
        var counted = await Eventually.ValueAsync(
            async () => MetricText.Sum(await management.GetStringAsync("/metrics"), "mnemo_requests_total"),
            n => n >= requests,
            $"{requests} requests counted in mnemo_requests_total");
        Assert.That(counted, Is.EqualTo(requests), "the requests the proxy counted: more than were sent, and this barrier could pass before the last one is done");
        await Eventually.TrueAsync(
            async () => MetricText.Value(await management.GetStringAsync("/metrics"), "mnemo_writeback_queue_depth") == 0,
            "an empty write-back queue");
    }

    /// <inheritdoc cref="SettledAsync(HttpClient, int)"/>
    protected static Task SettledAsync(ProxyHost proxy, int requests) => SettledAsync(proxy.Management, requests);

    protected async Task<JsonElement[]> StoredTurnsAsync(string session, string apiKey = ApiKey)
    {
        var values = await Redis.Db.ListRangeAsync(TurnsKey(session, apiKey));
        return values.Select(v => JsonDocument.Parse((byte[])v!).RootElement.Clone()).ToArray();
    }

    protected async Task<long> KeyCountAsync() => await Redis.Server.DatabaseSizeAsync();

    protected static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : "";

    /// <summary>Sends a request and reads the whole body; the turn is queued once this returns.</summary>
    protected static async Task<(HttpResponseMessage Response, byte[] Body)> SendAsync(ProxyHost proxy, HttpRequestMessage request)
    {
        var response = await proxy.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsByteArrayAsync();
        return (response, body);
    }

    protected static string UserTurn(string content, bool stream = false, string system = "You are a helpful assistant.") =>
        JsonSerializer.Serialize(new
        {
            model = "gpt-4o-mini",
            messages = new object[]
            {
                new { role = "developer", content = system },
                new { role = "user", content },
            },
            stream,
        });
}
