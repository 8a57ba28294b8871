using System.Net;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Forwarding;

/// <summary>How a request's dialect is found: its path's suffix (any prefix), or its route's <c>Mnemo.Dialect</c> metadata.</summary>
public sealed class RouteDialectTests : FunctionalTest
{
    [TestCase("/openai/v1/chat/completions")]
    [TestCase("/openai/deployments/gpt-4o/chat/completions")]
    public async Task PrefixedPath_IsRecognisedBySuffix_AndRemembered(string path)
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, ProxyHost.Chat(UserTurn("My name is Ada."), session: "prefixed", path: path));
        var (response, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("What is my name?"), session: "prefixed", path: path));

        Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("hit"));
        Assert.That(Upstream.LastRequest.Path, Is.EqualTo(path));
        Assert.That(Upstream.LastRequest.BodyText, Does.Contain("My name is Ada."));
    }

    [Test]
    public async Task RouteMetadata_NamesTheDialectOfAnyPath_OrTurnsMemoryOff()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:custom:ClusterId"] = "llm",
            ["ReverseProxy:Routes:custom:Match:Path"] = "/llm/ask",
            ["ReverseProxy:Routes:custom:Metadata:Mnemo.Dialect"] = "openai-chat",
            ["ReverseProxy:Routes:plain:ClusterId"] = "llm",
            ["ReverseProxy:Routes:plain:Match:Path"] = "/v1/chat/completions",
            ["ReverseProxy:Routes:plain:Metadata:Mnemo.Dialect"] = "none",
            ["ReverseProxy:Clusters:llm:Destinations:one:Address"] = Upstream.Url,
        });

        await SendAsync(proxy, ProxyHost.Chat(UserTurn("My name is Ada."), session: "routed", path: "/llm/ask"));
        var (routed, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("What is my name?"), session: "routed", path: "/llm/ask"));
        Assert.That(routed.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Header(routed, "X-Mnemo-Memory"), Is.EqualTo("hit"), "a path no dialect claims, named by its route");
        Assert.That(Upstream.LastRequest.BodyText, Does.Contain("My name is Ada."));

        var (plain, _) = await SendAsync(proxy, ProxyHost.Chat(UserTurn("Hello!"), session: "plain"));
        Assert.That(Header(plain, "X-Mnemo-Memory"), Is.EqualTo("off"), "a chat path whose route says none");
        await SettledAsync(proxy, requests: 3);
        Assert.That(await Redis.Db.KeyExistsAsync(TurnsKey("plain")), Is.False);
    }
}
