using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.Tests.Sessions;

public sealed class SessionResolverTests
{
    [TestCase("a")]
    [TestCase("user-42.chat_7:2026@eu")]
    [TestCase("0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567")]
    public void Resolve_ValidId_IsResolved(string id)
    {
        var result = Resolver().Resolve(Request(("X-Session-Id", id), s_key));
        Assert.That(result.Status, Is.EqualTo(SessionStatus.Resolved));
        Assert.That(result.Key!.Id, Is.EqualTo(id));
    }

    [TestCase("has space")]
    [TestCase("{braces}")]
    [TestCase("a,b")]
    [TestCase("é")]
    [TestCase("a/b")]
    public void Resolve_InvalidId_IsRejectedWithoutEchoingIt(string id)
    {
        var result = Resolver().Resolve(Request(("X-Session-Id", id)));
        Assert.That(result.Status, Is.EqualTo(SessionStatus.Invalid));
        Assert.That(result.ErrorCode, Is.EqualTo("invalid_session_id"));
    }

    [Test]
    public void Resolve_TooLongId_IsRejected() =>
        Assert.That(Resolver().Resolve(Request(("X-Session-Id", new string('a', 129)))).Status, Is.EqualTo(SessionStatus.Invalid));

    [Test]
    public void Resolve_NoHeader_IsAbsent() =>
        Assert.That(Resolver().Resolve(Request()).Status, Is.EqualTo(SessionStatus.Absent));

    [Test]
    public void Resolve_ConfiguredHeader_IsTheOneRead()
    {
        var resolver = Resolver(header: "X-Conversation");
        Assert.That(resolver.Resolve(Request(("X-Session-Id", "a"))).Status, Is.EqualTo(SessionStatus.Absent));
        Assert.That(resolver.Resolve(Request(("X-Conversation", "a"), s_key)).Status, Is.EqualTo(SessionStatus.Resolved));
    }

    [TestCase("Authorization", "Bearer sk-abc")]
    [TestCase("Authorization", "bearer sk-abc")]
    [TestCase("x-api-key", "sk-abc")]
    [TestCase("api-key", "sk-abc")]
    public void ApiKeyTenancy_TenantIsAHashOfTheKey(string header, string value)
    {
        var key = Resolver().Resolve(Request(("X-Session-Id", "s"), (header, value))).Key!;
        var expected = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("sk-abc")).AsSpan(0, 16));
        Assert.That(key.Tenant, Is.EqualTo(expected));
    }

    [TestCase]
    [TestCase("Authorization", "Bearer ")]
    [TestCase("Authorization", "  ")]
    [TestCase("x-api-key", "")]
    public void ApiKeyTenancy_NoKey_IsRefusedWith401NamingTheSetting_NeverPooled(params string[] header)
    {
        var result = Resolver().Resolve(header.Length == 0 ? Request(("X-Session-Id", "s")) : Request(("X-Session-Id", "s"), (header[0], header[1])));
        Assert.That(result.Status, Is.EqualTo(SessionStatus.Invalid));
        Assert.That((result.StatusCode, result.ErrorCode), Is.EqualTo((401, "missing_api_key")));
        Assert.That(result.ErrorMessage, Does.Contain("Mnemo:Tenancy:Mode").And.Contain("Header").And.Contain("None"));
    }

    [Test]
    public void ApiKeyTenancy_SeveralDifferentKeys_AreAmbiguous()
    {
        var resolver = Resolver();
        Assert.Multiple(() =>
        {
            Assert.That(resolver.Resolve(Request(("X-Session-Id", "s"), ("Authorization", "Bearer k1"), ("Authorization", "Bearer k2"))).ErrorCode,
                Is.EqualTo("ambiguous_credentials"), "a repeated Authorization header");
            Assert.That(resolver.Resolve(Request(("X-Session-Id", "s"), ("Authorization", "Bearer k1"), ("Authorization", "Bearer k1"))).ErrorCode,
                Is.EqualTo("ambiguous_credentials"), "a repeated header is refused whatever it holds");
            Assert.That(resolver.Resolve(Request(("X-Session-Id", "s"), ("Authorization", "Bearer k1, Bearer k2"))).ErrorCode,
                Is.EqualTo("ambiguous_credentials"), "a list in one header");
            Assert.That(resolver.Resolve(Request(("X-Session-Id", "s"), ("Authorization", "Bearer k1"), ("x-api-key", "k2"))).ErrorCode,
                Is.EqualTo("ambiguous_credentials"), "different keys in two headers");
            Assert.That(resolver.Resolve(Request(("X-Session-Id", "s"), ("x-api-key", "k1"), ("api-key", "k2"))).ErrorCode,
                Is.EqualTo("ambiguous_credentials"));
        });
    }

    [Test]
    public void ApiKeyTenancy_TheSameKeyInTwoHeaders_IsOneKey()
    {
        var resolver = Resolver();
        var both = resolver.Resolve(Request(("X-Session-Id", "s"), ("Authorization", "Bearer k1"), ("x-api-key", "k1")));
        var one = resolver.Resolve(Request(("X-Session-Id", "s"), ("x-api-key", "k1")));
        Assert.That(both.Status, Is.EqualTo(SessionStatus.Resolved));
        Assert.That(both.Key!.Tenant, Is.EqualTo(one.Key!.Tenant));
    }

    [Test]
    public void HeaderTenancy_UsesTheTrustedHeader_AndRequiresIt()
    {
        var resolver = Resolver(mode: TenancyMode.Header);
        Assert.That(resolver.Resolve(Request(("X-Session-Id", "s"), ("X-Tenant-Id", "acme"))).Key!.Slot, Is.EqualTo("acme:s"));
        Assert.That(resolver.Resolve(Request(("X-Session-Id", "s"))).ErrorCode, Is.EqualTo("missing_tenant"));
        Assert.That(resolver.Resolve(Request(("X-Session-Id", "s"), ("X-Tenant-Id", "a:b"))).ErrorCode, Is.EqualTo("invalid_tenant"),
            "a colon in the tenant could collide with another tenant's session");
    }

    [Test]
    public void NoTenancy_IgnoresKeys() =>
        Assert.That(Resolver(mode: TenancyMode.None).Resolve(Request(("X-Session-Id", "s"), ("Authorization", "Bearer k"))).Key!.Tenant, Is.EqualTo("_"));

    [Test]
    public void SessionKey_ToString_DoesNotRevealTheId() =>
        Assert.That(new SessionKey("t", "secret-id").ToString(), Does.Not.Contain("secret-id"));

    private static readonly (string, string) s_key = ("Authorization", "Bearer sk-abc");

    private static SessionResolver Resolver(string header = "X-Session-Id", TenancyMode mode = TenancyMode.ApiKey) =>
        new(Options.Create(new SessionIdOptions { Header = header }), Options.Create(new TenancyOptions { Mode = mode }));

    private static HttpRequest Request(params (string Name, string Value)[] headers)
    {
        var context = new DefaultHttpContext();
        foreach (var (name, value) in headers)
        {
            context.Request.Headers.Append(name, value);
        }

        return context.Request;
    }
}
