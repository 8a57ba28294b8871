using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Tests.Common;
using static Mnemo.Proxy.Tests.Admin.AdminApiClient;

namespace Mnemo.Proxy.Tests.Admin;

/// <summary>Who may call the admin API and how it answers the wrong calls; <c>GET /admin/v1/tenant-id</c> in each tenancy mode.</summary>
public sealed class AdminApiAccessTests : FunctionalTest
{
    [Test]
    public async Task AnyAdminPath_NoTokenConfigured_404AdminDisabled()
    {
        await using var proxy = await StartProxyAsync();

        foreach (var path in new[] { "/admin/v1/tenant-id", SessionPath(Tenant(ApiKey), "s"), "/admin/anything" })
        {
            var reply = await GetAsync(proxy, path);
            Assert.That(reply.Status, Is.EqualTo(HttpStatusCode.NotFound), path);
            Assert.That(reply.ErrorCode, Is.EqualTo("admin_disabled"), path);
        }
    }

    [Test]
    public async Task Authorization_NoneBasicWrongRight_401_401_403_200()
    {
        await using var proxy = await StartProxyAsync(Settings());
        const string path = "/admin/v1/tenant-id";
        void Key(HttpRequestMessage r) => r.Headers.Add(ApiKeyHeader, ApiKey);

        var none = await GetAsync(proxy, path, token: null, Key);
        var basic = await GetAsync(proxy, path, token: null, r =>
        {
            Key(r);
            r.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("admin:" + Token)));
        });
        var bareToken = await GetAsync(proxy, path, token: null, r =>
        {
            Key(r);
            r.Headers.TryAddWithoutValidation("Authorization", Token);
        });
        var wrong = await GetAsync(proxy, path, token: Token + "x", Key);
        var prefix = await GetAsync(proxy, path, token: Token[..^1], Key);
        var right = await GetAsync(proxy, path, Token, Key);

        Assert.That((none.Status, none.ErrorCode), Is.EqualTo((HttpStatusCode.Unauthorized, "unauthorized")));
        Assert.That(none.Response.Headers.WwwAuthenticate.ToString(), Is.EqualTo("Bearer realm=\"mnemo-admin\""));
        Assert.That((basic.Status, basic.ErrorCode), Is.EqualTo((HttpStatusCode.Unauthorized, "unauthorized")));
        Assert.That(basic.Response.Headers.WwwAuthenticate.ToString(), Is.EqualTo("Bearer realm=\"mnemo-admin\""));
        Assert.That(bareToken.Status, Is.EqualTo(HttpStatusCode.Unauthorized), "the token without the Bearer scheme");
        Assert.That((wrong.Status, wrong.ErrorCode), Is.EqualTo((HttpStatusCode.Forbidden, "forbidden")));
        Assert.That(prefix.Status, Is.EqualTo(HttpStatusCode.Forbidden), "a prefix of the token");
        Assert.That(right.Status, Is.EqualTo(HttpStatusCode.OK), right.Text);
        Assert.That(right.Json.GetProperty("tenant").GetString(), Is.EqualTo(Tenant(ApiKey)));
        foreach (var refused in new[] { none, basic, bareToken, wrong, prefix })
        {
            Assert.That(refused.Text, Does.Not.Contain(Tenant(ApiKey)), "a refused call reveals nothing");
            Assert.That(refused.Response.Headers.CacheControl?.NoStore, Is.True);
        }
    }

    [Test]
    public async Task Routes_UnknownSessionBadIdsWrongMethodUnknownPath_TheirErrors()
    {
        await using var proxy = await StartProxyAsync(Settings());
        var tenant = Tenant(ApiKey);

        var unknown = await GetAsync(proxy, SessionPath(tenant, "never-written"));
        Assert.That((unknown.Status, unknown.ErrorCode), Is.EqualTo((HttpStatusCode.NotFound, "session_not_found")));

        // '*' and '?' would be SCAN patterns; '%2F' stays encoded in the path; a space and '!' are not allowed.
        foreach (var badTenant in new[] { "*", "ab%3Fc", "a%2Fb", "t%20x", new string('a', 300) })
        {
            var list = await GetAsync(proxy, $"/admin/v1/tenants/{badTenant}/sessions");
            var export = await GetAsync(proxy, $"/admin/v1/tenants/{badTenant}/sessions/s1");
            var erase = await DeleteAsync(proxy, $"/admin/v1/tenants/{badTenant}");
            foreach (var reply in new[] { list, export, erase })
            {
                Assert.That((reply.Status, reply.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "invalid_tenant")), badTenant);
            }
        }

        foreach (var badSession in new[] { "bad%20id%21", "a%2Fb", "%2A", new string('s', 300) })
        {
            var export = await GetAsync(proxy, $"/admin/v1/tenants/{tenant}/sessions/{badSession}");
            var erase = await DeleteAsync(proxy, $"/admin/v1/tenants/{tenant}/sessions/{badSession}");
            Assert.That((export.Status, export.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "invalid_session_id")), badSession);
            Assert.That((erase.Status, erase.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "invalid_session_id")), badSession);
        }

        var wrongMethods = new (HttpMethod Method, string Path, string Allow)[]
        {
            (HttpMethod.Post, SessionPath(tenant, "s1"), "GET, DELETE"),
            (HttpMethod.Put, SessionPath(tenant, "s1"), "GET, DELETE"),
            (HttpMethod.Delete, $"/admin/v1/tenants/{tenant}/sessions", "GET"),
            (HttpMethod.Get, $"/admin/v1/tenants/{tenant}", "DELETE"),
            (HttpMethod.Post, "/admin/v1/tenant-id", "GET"),
        };
        foreach (var (method, path, allow) in wrongMethods)
        {
            var reply = await CallAsync(proxy.Management, method, path);
            Assert.That((reply.Status, reply.ErrorCode), Is.EqualTo((HttpStatusCode.MethodNotAllowed, "method_not_allowed")), $"{method} {path}");
            Assert.That(reply.Response.Content.Headers.Allow, Is.EqualTo(allow.Split(", ")), $"{method} {path}");
        }

        foreach (var path in new[] { "/admin", "/admin/v1", "/admin/v2/tenant-id", $"/admin/v1/tenants/{tenant}/sessions/s1/turns", "/admin/v1/tenants" })
        {
            var reply = await GetAsync(proxy, path);
            Assert.That((reply.Status, reply.ErrorCode), Is.EqualTo((HttpStatusCode.NotFound, "not_found")), path);
        }
    }

    [Test]
    public async Task AdminPathOnProxyPort_IsProxiedToTheUpstream_NeverServedOrErased()
    {
        await using var proxy = await StartProxyAsync(Settings());
        const string session = "proxy-port-probe";
        await SendTurnAsync(proxy, Turn("openai-chat", "Remember me", stream: false, session));
        await WaitForTurnsAsync(session, 1);
        var stored = await Redis.Db.ListRangeAsync(TurnsKey(session));
        var path = SessionPath(Tenant(ApiKey), session);
        Upstream.Reset();

        var export = await CallAsync(proxy.Client, HttpMethod.Get, path);
        var erase = await CallAsync(proxy.Client, HttpMethod.Delete, path);
        var eraseTenant = await CallAsync(proxy.Client, HttpMethod.Delete, $"/admin/v1/tenants/{Tenant(ApiKey)}");

        Assert.That(Upstream.Requests.Select(r => (r.Method, r.Path)), Is.EqualTo(new[]
        {
            ("GET", path),
            ("DELETE", path),
            ("DELETE", $"/admin/v1/tenants/{Tenant(ApiKey)}"),
        }), "the proxy port forwards /admin/... like any path");
        foreach (var reply in new[] { export, erase, eraseTenant })
        {
            // The fake upstream answers any other path with the chat completion fixture.
            Assert.That(reply.Body, Is.EqualTo(Upstream.Fixture("completion.json")));
            Assert.That(reply.Text, Does.Not.Contain("Remember me"));
            Assert.That(reply.Json.TryGetProperty("turns", out _) || reply.Json.TryGetProperty("erased", out _) || reply.Json.TryGetProperty("sessions_erased", out _), Is.False);
        }

        Assert.That(await Redis.Db.ListRangeAsync(TurnsKey(session)), Is.EqualTo(stored), "nothing erased");
        Assert.That((await GetAsync(proxy, path)).Status, Is.EqualTo(HttpStatusCode.OK), "still exported on the management port");
    }

    [TestCase("short-token")]
    [TestCase("      padded-short      ")]
    public void Start_TokenShorterThan16Characters_Fails(string token)
    {
        var failure = Assert.CatchAsync(async () =>
        {
            await using var proxy = await StartProxyAsync(new Dictionary<string, string?> { ["Mnemo:Admin:Token"] = token });
        });

        Assert.That(failure, Is.InstanceOf<OptionsValidationException>());
        Assert.That(failure!.Message, Does.Contain("Mnemo:Admin:Token"));
        Assert.That(failure.Message, Does.Not.Contain(token.Trim()), "the error does not quote the token");
    }

    [Test]
    public async Task TenantId_ApiKeyMode_BareOrBearerKey_IsTheTenantWhoseExportHoldsTheKeysSession()
    {
        const string key = "sk-tenant-probe-4711";
        const string session = "written-with-the-probe-key";
        await using var proxy = await StartProxyAsync(Settings());
        await SendTurnAsync(proxy, Turn("anthropic-messages", "Mine", stream: false, session, apiKey: key));
        await WaitForTurnsAsync(session, 1, key);

        var bare = await GetAsync(proxy, "/admin/v1/tenant-id", configure: r => r.Headers.Add(ApiKeyHeader, key));
        var bearer = await GetAsync(proxy, "/admin/v1/tenant-id", configure: r => r.Headers.Add(ApiKeyHeader, "Bearer " + key));
        var tenant = bare.Json.GetProperty("tenant").GetString()!;
        var export = await GetAsync(proxy, SessionPath(tenant, session));
        var otherTenant = await GetAsync(proxy, SessionPath(Tenant(ApiKey), session));

        Assert.That(bare.Status, Is.EqualTo(HttpStatusCode.OK), bare.Text);
        Assert.That(tenant, Is.EqualTo(Tenant(key)));
        Assert.That(bearer.Json.GetProperty("tenant").GetString(), Is.EqualTo(Tenant(key)));
        Assert.That(bare.Text, Does.Not.Contain(key), "the key is not echoed");
        Assert.That(export.Status, Is.EqualTo(HttpStatusCode.OK), export.Text);
        Assert.That(export.Json.GetProperty("turns")[0].GetProperty("id").GetString(),
            Is.EqualTo((await StoredTurnsAsync(session, key))[0].GetProperty("id").GetString()));
        Assert.That(Strings(export.Json.GetProperty("turns")), Does.Contain("Mine"));
        Assert.That(otherTenant.ErrorCode, Is.EqualTo("session_not_found"), "another key's tenant does not hold it");
    }

    [Test]
    public async Task TenantId_ApiKeyMode_KeyMissingInQueryOrAmbiguous_400()
    {
        await using var proxy = await StartProxyAsync(Settings());

        var missing = await GetAsync(proxy, "/admin/v1/tenant-id");
        var inQuery = await GetAsync(proxy, $"/admin/v1/tenant-id?key={ApiKey}&api_key={ApiKey}&{ApiKeyHeader}={ApiKey}");
        var empty = await GetAsync(proxy, "/admin/v1/tenant-id", configure: r => r.Headers.TryAddWithoutValidation(ApiKeyHeader, ""));
        var twoKeys = await GetAsync(proxy, "/admin/v1/tenant-id", configure: r => r.Headers.TryAddWithoutValidation(ApiKeyHeader, "sk-a,sk-b"));
        var twoHeaders = await GetAsync(proxy, "/admin/v1/tenant-id", configure: r => r.Headers.TryAddWithoutValidation(ApiKeyHeader, ["sk-a", "sk-b"]));

        Assert.That((missing.Status, missing.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "missing_api_key")));
        Assert.That((inQuery.Status, inQuery.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "missing_api_key")), "a key in the URL is never taken");
        Assert.That((empty.Status, empty.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "missing_api_key")));
        Assert.That((twoKeys.Status, twoKeys.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "ambiguous_credentials")));
        Assert.That((twoHeaders.Status, twoHeaders.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "ambiguous_credentials")));
        Assert.That(inQuery.Text, Does.Not.Contain(Tenant(ApiKey)));
    }

    [Test]
    public async Task TenantId_NoneMode_SharedTenant_HeaderMode_400TenantFromHeader()
    {
        await using (var none = await StartProxyAsync(Settings(("Mnemo:Tenancy:Mode", "None"))))
        {
            var withKey = await GetAsync(none, "/admin/v1/tenant-id", configure: r => r.Headers.Add(ApiKeyHeader, ApiKey));
            var withoutKey = await GetAsync(none, "/admin/v1/tenant-id");
            Assert.That(withKey.Status, Is.EqualTo(HttpStatusCode.OK), withKey.Text);
            Assert.That(withKey.Json.GetProperty("tenant").GetString(), Is.EqualTo("_"));
            Assert.That(withoutKey.Json.GetProperty("tenant").GetString(), Is.EqualTo("_"));
        }

        await using var header = await StartProxyAsync(Settings(("Mnemo:Tenancy:Mode", "Header")));
        var reply = await GetAsync(header, "/admin/v1/tenant-id", configure: r => r.Headers.Add(ApiKeyHeader, ApiKey));
        Assert.That((reply.Status, reply.ErrorCode), Is.EqualTo((HttpStatusCode.BadRequest, "tenant_from_header")));
        Assert.That(reply.Json.GetProperty("error").GetProperty("message").GetString(), Does.Contain("X-Tenant-Id"));
    }

    private const string ApiKeyHeader = "X-Mnemo-Api-Key";
}
