using System.Net;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Health;

/// <summary>Liveness and readiness on the management port.</summary>
public sealed class HealthTests : FunctionalTest
{
    [Test]
    public async Task Live_IsOk()
    {
        await using var proxy = await StartProxyAsync();
        var response = await proxy.Management.GetAsync("/healthz/live");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Json(await response.Content.ReadAsStringAsync()).GetProperty("status").GetString(), Is.EqualTo("live"));
    }

    [Test]
    public async Task Ready_WithRedis_ReportsRedis()
    {
        await using var proxy = await StartProxyAsync();
        var response = await proxy.Management.GetAsync("/healthz/ready");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var body = Json(await response.Content.ReadAsStringAsync());
        Assert.That(body.GetProperty("store").GetString(), Is.EqualTo("redis"));
        Assert.That(body.GetProperty("detail").GetString(), Is.EqualTo("redis: connected"));
    }

    [Test]
    public async Task Ready_WithEmbeddedStore_SaysSo()
    {
        await using var proxy = await StartProxyAsync(redis: null);
        var response = await proxy.Management.GetAsync("/healthz/ready");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var body = Json(await response.Content.ReadAsStringAsync());
        Assert.That(body.GetProperty("store").GetString(), Is.EqualTo("embedded"));
        Assert.That(body.GetProperty("detail").GetString(), Does.Contain("single replica"));
        Assert.That(proxy.Logs.All, Does.Contain("embedded in-process store"));
    }

    [Test]
    public async Task Ready_IsNotReadyUntilRedisHasAnswered_ThenReadyAndStaysReadyDuringAnOutage()
    {
        await Redis.StopAsync();
        await using var proxy = await StartProxyAsync(redis: $"{Redis.ConnectionString},connectTimeout=500", waitUntilReady: false);
        var before = await proxy.Management.GetAsync("/healthz/ready");
        Assert.That(before.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        Assert.That(Json(await before.Content.ReadAsStringAsync()).GetProperty("status").GetString(), Is.EqualTo("not_ready"));

        // Not ready, but not refusing either: requests are forwarded without memory.
        var (degraded, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("hi"), session: "early"));
        Assert.That(Header(degraded, "X-Mnemo-Memory"), Is.EqualTo("degraded"));

        await Redis.StartAsync(CancellationToken.None);
        await proxy.WaitUntilReadyAsync();

        await Redis.StopAsync();
        // Until the proxy has noticed the outage, or has answered anything but 200 on the way.
        var (status, detail) = await Eventually.ValueAsync(
            async () =>
            {
                var response = await proxy.Management.GetAsync("/healthz/ready");
                return (Status: response.StatusCode, Detail: Json(await response.Content.ReadAsStringAsync()).GetProperty("detail").GetString() ?? "");
            },
            r => r.Status != HttpStatusCode.OK || r.Detail.Contains("unavailable", StringComparison.Ordinal),
            "the readiness to report the outage");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), "an outage of the shared store must not take every replica out of service");
        Assert.That(detail, Does.Contain("unavailable"));
    }

    [Test]
    public async Task ManagementPort_AnswersOnlyItsOwnPaths()
    {
        await using var proxy = await StartProxyAsync();
        var response = await proxy.Management.PostAsync("/v1/chat/completions", new StringContent(UserTurn("hi")));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(Upstream.Requests, Is.Empty, "nothing is proxied from the management port");
    }

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();
}
