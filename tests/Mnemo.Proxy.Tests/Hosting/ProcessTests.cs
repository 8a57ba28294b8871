using System.Net;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Hosting;

/// <summary>Mnemo as its own process: the README's run command, SIGTERM, and a bad setting at start.</summary>
public sealed class ProcessTests : FunctionalTest
{
    [Test]
    public async Task ReadmeRunCommand_ServesAConversationFromTheEmbeddedStore()
    {
        // The README's command (dotnet run --project proxy -- --Mnemo:Upstream=…), on free ports instead of 8080/9090.
        var proxyPort = Ports.Free();
        var managementPort = Ports.Free();
        using var process = MnemoProcess.Start(
            [
                "run", "--project", Path.Combine(MnemoProcess.RepositoryRoot, "proxy"), "--",
                $"--Mnemo:Upstream={Upstream.Url}",
                $"--Kestrel:Endpoints:Proxy:Url=http://127.0.0.1:{proxyPort}",
                $"--Kestrel:Endpoints:Management:Url=http://127.0.0.1:{managementPort}",
            ],
            new Dictionary<string, string?> { ["ConnectionStrings__Redis"] = null },
            workingDirectory: MnemoProcess.RepositoryRoot);

        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{proxyPort}") };
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}") };
        await process.WaitReadyAsync(management, TimeSpan.FromMinutes(3));

        await client.SendAsync(ProxyHost.Chat(UserTurn("Hello!"), session: "readme"));
        var second = await client.SendAsync(ProxyHost.Chat(UserTurn("What did I say?"), session: "readme"));

        Assert.That(second.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Header(second, "X-Mnemo-Memory"), Is.EqualTo("hit"));
        Assert.That(Upstream.LastRequest.Messages().Select(m => m.Content), Does.Contain("Hello!"));
        Assert.That(process.Output, Does.Contain("embedded in-process store"));
        Assert.That(await KeyCountAsync(), Is.Zero, "nothing went to Redis");
    }

    [Test]
    public async Task Sigterm_LetsTheInFlightStreamFinish_WritesItsTurn_AndExitsZero()
    {
        Upstream.EventDelay = TimeSpan.FromMilliseconds(300);
        var proxyPort = Ports.Free();
        var managementPort = Ports.Free();
        using var process = MnemoProcess.StartBuilt(
        [
            $"--Mnemo:Upstream={Upstream.Url}",
            $"--ConnectionStrings:Redis={Redis.ConnectionString}",
            $"--Kestrel:Endpoints:Proxy:Url=http://127.0.0.1:{proxyPort}",
            $"--Kestrel:Endpoints:Management:Url=http://127.0.0.1:{managementPort}",
        ]);
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{proxyPort}") };
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}") };
        await process.WaitReadyAsync(management, TimeSpan.FromSeconds(30));

        using var response = await client.SendAsync(ProxyHost.Chat(UserTurn("Hello!", stream: true), session: "sigterm"), HttpCompletionOption.ResponseHeadersRead);
        var reading = response.Content.ReadAsByteArrayAsync();
        await Eventually.TrueAsync(() => Task.FromResult(Upstream.EventTimes.Count >= 1), "the stream to start");

        process.Terminate();
        var body = await reading;
        var exitCode = await process.WaitForExitAsync(TimeSpan.FromSeconds(20));

        Assert.That(body, Is.EqualTo(Upstream.Fixture("stream.sse")), "the stream in flight was finished, not cut");
        Assert.That(exitCode, Is.Zero, process.Output);
        Assert.That(await Redis.Db.ListLengthAsync(TurnsKey("sigterm")), Is.EqualTo(1), "its turn was written before exit");
    }

    [Test]
    public async Task InvalidSetting_ExitsNonZero_NamingTheKey()
    {
        using var process = MnemoProcess.StartBuilt(
        [
            "--Mnemo:Memory:MaxStoredTurns=0",
            $"--Kestrel:Endpoints:Proxy:Url=http://127.0.0.1:{Ports.Free()}",
            $"--Kestrel:Endpoints:Management:Url=http://127.0.0.1:{Ports.Free()}",
        ]);
        var exitCode = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.That(exitCode, Is.Not.Zero);
        Assert.That(process.Output, Does.Contain("Mnemo:Memory:MaxStoredTurns"));
    }
}
