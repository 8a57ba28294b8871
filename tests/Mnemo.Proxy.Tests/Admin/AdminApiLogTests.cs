using System.Net;
using System.Security.Cryptography;
using System.Text;
using Mnemo.Proxy.Tests.Common;
using static Mnemo.Proxy.Tests.Admin.AdminApiClient;

namespace Mnemo.Proxy.Tests.Admin;

/// <summary>
/// What the admin API leaves in the logs with every level turned up to Trace: one audit line per action, and never a
/// session id, a key, a token or content. In process (the captured provider sits behind the same configured filters
/// as the console, see <see cref="Logs_EveryLevelAtTrace_FiltersOfTheConfigurationApplyToTheCapture"/>) and in the built process's console.
/// </summary>
public sealed class AdminApiLogTests : FunctionalTest
{
    private const string Session = "sess-ZQX7-secret-9931";
    private const string OtherSession = "sess-KJW2-secret-5570";
    private const string Key = "sk-logcheck-KEY-55a1c9";
    private const string WrongToken = "wrong-admin-token-QQ99-abcdef";
    private const string Prompt = "PROMPT-purple-walrus-7781";
    private const string Answer = "ANSWER-violet-heron-4410";

    private static readonly (string Key, string? Value)[] s_trace =
    [
        ("Logging:LogLevel:Default", "Trace"),
        ("Logging:LogLevel:Microsoft", "Trace"),
        ("Logging:LogLevel:Microsoft.AspNetCore", "Trace"),
        ("Logging:LogLevel:Yarp", "Trace"),
    ];

    [Test]
    public async Task Logs_EveryAdminActionAtTrace_AuditLinePerAction_NoSessionKeyTokenOrContent()
    {
        Upstream.RawJsonAnswer = AnswerJson();
        await using var proxy = await StartProxyAsync(Settings(s_trace));

        await RunEveryActionAsync(proxy.Client, proxy.Management);
        await proxy.StopAsync();

        AssertLogs(proxy.Logs.All, proxy.Logs.Lines.Count);
    }

    [Test]
    public async Task Logs_BuiltProcessConsoleAtTrace_AuditLinePerAction_NoSessionKeyTokenOrContent()
    {
        Upstream.RawJsonAnswer = AnswerJson();
        var (process, proxyPort, managementPort) = await MnemoProcess.StartBuiltReadyAsync((proxyPort, managementPort) =>
            new[]
            {
                $"--Mnemo:Upstream={Upstream.Url}",
                $"--ConnectionStrings:Redis={Redis.ConnectionString}",
                $"--Kestrel:Endpoints:Proxy:Url=http://127.0.0.1:{proxyPort}",
                $"--Kestrel:Endpoints:Management:Url=http://127.0.0.1:{managementPort}",
            }.Concat(s_trace.Select(s => $"--{s.Key}={s.Value}")),
            // The token from the environment, as a deployment gives it (a Secret), not on the command line.
            new Dictionary<string, string?> { ["Mnemo__Admin__Token"] = Token });
        using (process)
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{proxyPort}") };
            using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}") };

            await RunEveryActionAsync(client, management);
            process.Terminate();
            Assert.That(await process.WaitForExitAsync(TimeSpan.FromSeconds(20)), Is.Zero, process.Output);

            AssertLogs(process.Output, process.Output.Split('\n').Length);
        }
    }

    [Test]
    public async Task Logs_EveryLevelAtTrace_FiltersOfTheConfigurationApplyToTheCapture()
    {
        await using (var quiet = await StartProxyAsync(Settings()))
        {
            await GetAsync(quiet, "/admin/v1/tenant-id", configure: r => r.Headers.Add("X-Mnemo-Api-Key", Key));
            await quiet.StopAsync();
            Assert.That(quiet.Logs.Lines.Where(l => l.StartsWith("Debug ", StringComparison.Ordinal) || l.StartsWith("Trace ", StringComparison.Ordinal)),
                Is.Empty, "the default configuration lets no Debug or Trace through to the capture");
            Assert.That(quiet.Logs.All, Does.Contain("Admin tenant_id: tenant "));
        }

        await using var loud = await StartProxyAsync(Settings(s_trace));
        await GetAsync(loud, "/admin/v1/tenant-id", configure: r => r.Headers.Add("X-Mnemo-Api-Key", Key));
        await loud.StopAsync();
        Assert.That(loud.Logs.Lines.Where(l => l.StartsWith("Trace Microsoft.AspNetCore.", StringComparison.Ordinal)), Is.Not.Empty,
            "Trace turned on reaches the capture");
        Assert.That(loud.Logs.Lines.Where(l => l.Contains(" Microsoft.AspNetCore.Hosting.Diagnostics[", StringComparison.Ordinal)), Is.Empty,
            "the request lines (they carry the URL) stay held at Warning");
    }

    /// <summary>
    /// A turn of two sessions with the distinctive key, prompt and answer; refused calls with no and a wrong token; then
    /// every admin action: tenant-id, list, export, erase one session, erase the tenant (which erases the other).
    /// </summary>
    private static async Task RunEveryActionAsync(HttpClient client, HttpClient management)
    {
        await SendTurnAsync(client, Turn("openai-chat", Prompt, stream: false, Session, apiKey: Key));
        await SendTurnAsync(client, Turn("openai-chat", Prompt, stream: true, OtherSession, apiKey: Key));
        var tenant = Tenant(Key);
        await Eventually.TrueAsync(
            async () => (await CallAsync(management, HttpMethod.Get, $"/admin/v1/tenants/{tenant}/sessions")).Json.GetProperty("sessions").GetArrayLength() == 2,
            "both sessions written");

        Assert.That((await CallAsync(management, HttpMethod.Get, "/admin/v1/tenant-id", token: null)).Status, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That((await CallAsync(management, HttpMethod.Get, SessionPath(tenant, Session), token: WrongToken)).Status, Is.EqualTo(HttpStatusCode.Forbidden));
        var tenantId = await CallAsync(management, HttpMethod.Get, "/admin/v1/tenant-id", configure: r => r.Headers.Add("X-Mnemo-Api-Key", Key));
        var list = await CallAsync(management, HttpMethod.Get, $"/admin/v1/tenants/{tenant}/sessions?limit=10");
        var export = await CallAsync(management, HttpMethod.Get, SessionPath(tenant, Session));
        var erase = await CallAsync(management, HttpMethod.Delete, SessionPath(tenant, Session));
        var eraseTenant = await CallAsync(management, HttpMethod.Delete, $"/admin/v1/tenants/{tenant}");
        var gone = await CallAsync(management, HttpMethod.Get, SessionPath(tenant, OtherSession));

        Assert.That(tenantId.Json.GetProperty("tenant").GetString(), Is.EqualTo(tenant));
        Assert.That(list.Json.GetProperty("sessions").GetArrayLength(), Is.EqualTo(2));
        Assert.That(export.Text, Does.Contain(Prompt).And.Contain(Answer), "the export holds what the logs must not");
        Assert.That(erase.Json.GetProperty("erased").GetBoolean(), Is.True, erase.Text);
        Assert.That(eraseTenant.Status, Is.EqualTo(HttpStatusCode.OK), eraseTenant.Text);
        Assert.That(gone.ErrorCode, Is.EqualTo("session_not_found"));
    }

    private static void AssertLogs(string logs, int lines)
    {
        Assert.That(lines, Is.GreaterThan(50), "Trace is on: the logs are not empty by accident");
        foreach (var (secret, what) in new[]
        {
            (Session, "the session id"),
            (OtherSession, "the other session id"),
            ("ZQX7", "part of the session id"),
            (Key, "the API key"),
            (Token, "the admin token"),
            (WrongToken, "the wrong admin token"),
            (Prompt, "the prompt"),
            (Answer, "the answer"),
        })
        {
            Assert.That(logs, Does.Not.Contain(secret), $"{what} is not logged");
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Tenant(Key))).AsSpan(0, 8));
        foreach (var audit in new[]
        {
            $"Admin tenant_id: tenant {hash}, 1, ok.",
            $"Admin list_sessions: tenant {hash}, 2, ok.",
            $"Admin export_session: tenant {hash}, 1, ok.",
            $"Admin erase_session: tenant {hash}, 1, ok.",
            $"Admin erase_tenant: tenant {hash}, 1, ok.",
            $"Admin export_session: tenant {hash}, 0, not_found.",
            "Admin request refused with 401",
            "Admin request refused with 403",
        })
        {
            Assert.That(logs, Does.Contain(audit), "the audit line");
        }

        Assert.That(logs, Does.Not.Contain(Tenant(Key)), "the tenant id itself is not logged, only its hash");
    }

    private static byte[] AnswerJson() => Encoding.UTF8.GetBytes(
        $$$"""{"id":"chatcmpl-log","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"{{{Answer}}}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}""");
}
