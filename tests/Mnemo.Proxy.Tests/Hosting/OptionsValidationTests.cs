using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Hosting;

/// <summary>A bad setting stops the proxy at start, with a message naming the key to fix.</summary>
public sealed class OptionsValidationTests
{
    [TestCase("Mnemo:Upstream", "not a url")]
    [TestCase("Mnemo:Upstream", "ftp://example.com")]
    [TestCase("Mnemo:UpstreamTimeout", "00:00:00")]
    [TestCase("Mnemo:ShutdownTimeout", "-00:00:01")]
    [TestCase("Mnemo:Session:Header", "X Session Id")]
    [TestCase("Mnemo:Tenancy:Mode", "Cookie")]
    [TestCase("Mnemo:Tenancy:Header", "")]
    [TestCase("Mnemo:Memory:Mode", "Sometimes")]
    [TestCase("Mnemo:Memory:MaxStoredTurns", "0")]
    [TestCase("Mnemo:Memory:MaxStoredTurns", "lots")]
    [TestCase("Mnemo:Memory:MaxContextTurns", "-1")]
    [TestCase("Mnemo:Memory:MaxContextTokens", "-5")]
    [TestCase("Mnemo:Memory:Ttl", "00:00:00")]
    [TestCase("Mnemo:Redis:ReadTimeout", "00:00:00")]
    [TestCase("Mnemo:Redis:BreakerFailureRatio", "2")]
    [TestCase("Mnemo:Redis:BreakerBreakDuration", "00:00:00.1")]
    [TestCase("Mnemo:WriteBack:QueueCapacity", "0")]
    [TestCase("ConnectionStrings:Redis", "127.0.0.1:6379,nosuchoption=1")]
    public void InvalidSetting_FailsStart_NamingTheKey(string key, string value)
    {
        var settings = new Dictionary<string, string?> { [key] = value };
        if (key == "Mnemo:Tenancy:Header")
        {
            settings["Mnemo:Tenancy:Mode"] = "Header";
        }

        var redis = key.StartsWith("ConnectionStrings", StringComparison.Ordinal) ? value : null;
        var error = Assert.CatchAsync(async () => await (await ProxyHost.StartAsync("http://127.0.0.1:9", redis, settings)).DisposeAsync());
        Assert.That(error!.Message, Does.Contain(key));
    }

    [Test]
    public async Task Defaults_Start()
    {
        await using var proxy = await ProxyHost.StartAsync("http://127.0.0.1:9", redis: null);
        Assert.That((await proxy.Management.GetAsync("/healthz/live")).IsSuccessStatusCode, Is.True);
    }

    [Test]
    public async Task MaxContextTurnsAboveMaxStoredTurns_IsCappedNotRejected()
    {
        await using var proxy = await ProxyHost.StartAsync("http://127.0.0.1:9", redis: null, new Dictionary<string, string?> { ["Mnemo:Memory:MaxStoredTurns"] = "5" });
        Assert.That((await proxy.Management.GetAsync("/healthz/live")).IsSuccessStatusCode, Is.True);
    }

    [TestCase("Mnemo.Dialect", "klingon")]
    [TestCase("Mnemo.Mode", "sometimes")]
    public void UnknownRouteMetadata_FailsStart_NamingTheRouteAndKey(string key, string value)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:chat:ClusterId"] = "llm",
            ["ReverseProxy:Routes:chat:Match:Path"] = "{**all}",
            [$"ReverseProxy:Routes:chat:Metadata:{key}"] = value,
            ["ReverseProxy:Clusters:llm:Destinations:one:Address"] = "http://127.0.0.1:9",
        };

        var error = Assert.CatchAsync(async () => await (await ProxyHost.StartAsync("http://127.0.0.1:9", redis: null, settings)).DisposeAsync());
        Assert.That(error!.ToString(), Does.Contain("Route 'chat'").And.Contain(key));
    }
}
