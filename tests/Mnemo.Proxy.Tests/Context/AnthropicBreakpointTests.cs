using System.Net;
using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Context;

/// <summary>The opt-in cache breakpoint on injected Anthropic history: where it goes, and the four-breakpoint limit.</summary>
public sealed class AnthropicBreakpointTests : FunctionalTest
{
    [Test]
    public async Task WithTheOptionOn_TheLastInjectedMessageEndsWithABreakpoint_AndTheClientsOwnStay()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Memory:AnthropicCacheBreakpoint"] = "true" });
        await SendAsync(proxy, Messages(Body("""{"role":"user","content":"Hello"}"""), "bp"));
        await WaitForTurnsAsync("bp", 1);
        await SendAsync(proxy, Messages(Body("""{"role":"user","content":[{"type":"text","text":"Second","cache_control":{"type":"ephemeral"}}]}"""), "bp"));
        await WaitForTurnsAsync("bp", 2);

        var (response, _) = await SendAsync(proxy, Messages(Body("""{"role":"user","content":[{"type":"text","text":"Third","cache_control":{"type":"ephemeral"}}]}"""), "bp"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        using var forwarded = JsonDocument.Parse(Upstream.LastRequest.Body);
        var messages = forwarded.RootElement.GetProperty("messages").EnumerateArray().ToArray();
        Assert.That(messages, Has.Length.EqualTo(5), "two turns of two messages, then the new one");
        Assert.That(Breakpoints(messages[0]) + Breakpoints(messages[1]) + Breakpoints(messages[2]), Is.Zero,
            "stored turns carry no breakpoint (the second turn's own was stripped when it was stored)");
        var lastBlock = messages[3].GetProperty("content").EnumerateArray().Last();
        Assert.That(lastBlock.GetProperty("cache_control").GetProperty("type").GetString(), Is.EqualTo("ephemeral"), "on the end of the history");
        Assert.That(Breakpoints(messages[4]), Is.EqualTo(1), "the client's own breakpoint is untouched");
        Assert.That(Encoding.UTF8.GetString(Upstream.LastRequest.Body).Split("cache_control").Length - 1, Is.EqualTo(2));
    }

    [Test]
    public async Task ClientUsingAllFourBreakpoints_GetsNoneAdded()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Memory:AnthropicCacheBreakpoint"] = "true" });
        await SendAsync(proxy, Messages(Body("""{"role":"user","content":"Hello"}"""), "full"));
        await WaitForTurnsAsync("full", 1);

        const string Block = """{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}""";
        await SendAsync(proxy, Messages(Body($$"""{"role":"user","content":[{{Block}},{{Block}},{{Block}},{{Block}}]}"""), "full"));

        Assert.That(Encoding.UTF8.GetString(Upstream.LastRequest.Body).Split("cache_control").Length - 1, Is.EqualTo(4), "never a fifth");
        Assert.That(Upstream.LastRequest.Messages(), Has.Count.EqualTo(3), "the history is still injected");
    }

    [Test]
    public async Task WithTheOptionOff_NoBreakpointIsAdded()
    {
        await using var proxy = await StartProxyAsync();
        await SendAsync(proxy, Messages(Body("""{"role":"user","content":"Hello"}"""), "off"));
        await WaitForTurnsAsync("off", 1);
        await SendAsync(proxy, Messages(Body("""{"role":"user","content":"Again"}"""), "off"));
        Assert.That(Encoding.UTF8.GetString(Upstream.LastRequest.Body), Does.Not.Contain("cache_control"));
    }

    [Test]
    public void OnLast_StringContent_BecomesOneTextBlockWithTheBreakpoint_AndEarlierMessagesStayByteForByte()
    {
        var segment = """{"role":"user","content":"Hi"} , {"role":"assistant","content":"Hello there"}"""u8.ToArray();
        var result = Encoding.UTF8.GetString(AnthropicBreakpoint.OnLast(segment).Span);
        Assert.That(result, Is.EqualTo("""{"role":"user","content":"Hi"} , {"role":"assistant","content":[{"type":"text","text":"Hello there","cache_control":{"type":"ephemeral"}}]}"""));
    }

    private static int Breakpoints(JsonElement message) =>
        message.GetRawText().Split("cache_control").Length - 1;

    private static string Body(string message) =>
        $$"""{"model":"claude-sonnet-4-5","max_tokens":256,"stream":false,"messages":[{{message}}]}""";

    private static HttpRequestMessage Messages(string body, string session)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("x-api-key", ApiKey);
        request.Headers.Add("anthropic-version", "2023-06-01");
        request.Headers.TryAddWithoutValidation("X-Session-Id", session);
        return request;
    }
}
