using System.Globalization;
using System.Net;
using System.Text;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Hosting;

/// <summary>
/// The proxy's resident memory, measured from outside as Kubernetes sees it (VmRSS of its own process): large request
/// bodies must not leave it holding tens of megabytes in buffer pools, or a pod near the chart's memory limit is killed.
/// </summary>
public sealed class MemoryFootprintTests : FunctionalTest
{
    /// <summary>What the chart's default memory limit allows; the figures in the chart's values.yaml come from this test.</summary>
    private const long ChartLimitBytes = 256L * 1024 * 1024;

    [Test]
    public async Task AfterACorpusOfLargeBodies_ResidentMemoryReturnsNearIdle_AndStaysWellUnderTheChartLimit()
    {
        var proxyPort = Ports.Free();
        var managementPort = Ports.Free();
        using var process = MnemoProcess.StartBuilt(
        [
            $"--Mnemo:Upstream={Upstream.Url}",
            $"--ConnectionStrings:Redis={Redis.ConnectionString}",
            $"--Kestrel:Endpoints:Proxy:Url=http://127.0.0.1:{proxyPort}",
            $"--Kestrel:Endpoints:Management:Url=http://127.0.0.1:{managementPort}",
        ]);
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{proxyPort}"), Timeout = TimeSpan.FromMinutes(2) };
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}") };
        await process.WaitReadyAsync(management, TimeSpan.FromSeconds(30));

        for (var i = 0; i < 20; i++)
        {
            await client.SendAsync(ProxyHost.Chat(UserTurn($"warm-up {i}", stream: i % 2 == 0), session: "idle"));
        }

        var idle = await SettledRssAsync(process.Id);

        // Up to Kestrel's default body limit (30,000,000 bytes), four at a time, streamed and not, with memory on: the
        // bodies are read whole, spliced, forwarded; none is stored (each is over MaxTurnBytes).
        long peak = 0;
        var sizes = new[] { 2, 29, 8, 16, 25, 4, 20, 12 };
        for (var round = 0; round < 3; round++)
        {
            var sends = sizes.Select(async (megabytes, index) =>
            {
                var response = await client.SendAsync(LargeRequest(megabytes * 1_000_000, stream: (index + round) % 2 == 0, session: $"large-{round}-{index}"));
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
                peak = Math.Max(peak, Rss(process.Id));
            });
            foreach (var chunk in sends.Chunk(4))
            {
                await Task.WhenAll(chunk);
            }
        }

        // A few small requests after, as traffic would keep coming.
        for (var i = 0; i < 20; i++)
        {
            await client.SendAsync(ProxyHost.Chat(UserTurn($"after {i}"), session: "idle"));
        }

        var after = await SettledRssAsync(process.Id);
        TestContext.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"RSS idle {Mb(idle)} MB, peak seen {Mb(peak)} MB, after the corpus {Mb(after)} MB"));

        Assert.That(after, Is.LessThan(idle + (64L * 1024 * 1024)),
            $"memory held after the corpus: idle {Mb(idle)} MB, after {Mb(after)} MB (a buffer pool or cache keeps large arrays)");
        Assert.That(after, Is.LessThan(ChartLimitBytes / 2), "half the old 256 MiB chart limit, leaving room for concurrent streams");
        Assert.That(await Redis.Server.KeysAsync(pattern: "*large-*").CountAsync(), Is.Zero, "every large turn was over MaxTurnBytes: none stored");
        Assert.That(await Redis.Db.ListLengthAsync(TurnsKey("idle")), Is.EqualTo(40));
    }

    private static HttpRequestMessage LargeRequest(int bytes, bool stream, string session)
    {
        var prefix = "{\"model\":\"gpt-4o-mini\"," + (stream ? "\"stream\":true," : "") + "\"messages\":[{\"role\":\"user\",\"content\":\"";
        const string Suffix = "\"}]}";
        var body = new byte[bytes];
        Encoding.ASCII.GetBytes(prefix).CopyTo(body, 0);
        body.AsSpan(prefix.Length, bytes - prefix.Length - Suffix.Length).Fill((byte)'a');
        Encoding.ASCII.GetBytes(Suffix).CopyTo(body, bytes - Suffix.Length);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiKey);
        request.Headers.Add("X-Session-Id", session);
        return request;
    }

    /// <summary>RSS once it has stopped falling, after a quiet 3 s (the GC gives memory back over a few seconds, not at once).</summary>
    private static async Task<long> SettledRssAsync(int pid)
    {
        await Task.Delay(3000);
        var last = Rss(pid);
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(500);
            var now = Rss(pid);
            if (now >= last - (1024 * 1024))
            {
                return now;
            }

            last = now;
        }

        return last;
    }

    private static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("no VmRSS");
    }

    private static long Mb(long bytes) => bytes / (1024 * 1024);
}
