using System.Globalization;
using System.Net;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Deployment;

/// <summary>
/// The repository's Dockerfile, built by <c>tests/container/build-image.sh</c> with <c>buildah bud --isolation chroot
/// --pull=never</c> against local stand-ins of its base images (no registry is reachable), then run.
/// </summary>
public sealed class ContainerImageTests
{
    private static readonly TimeSpan s_buildTimeout = TimeSpan.FromMinutes(20);
    private readonly string _tag = $"localhost/mnemo:test-{Guid.NewGuid().ToString("N")[..8]}";
    private readonly List<string> _containers = [];
    private readonly List<string> _images = [];

    [OneTimeSetUp]
    public async Task BuildAsync()
    {
        var (exitCode, output) = await Tool.RunAsync(Path.Combine(MnemoProcess.RepositoryRoot, "tests", "container", "build-image.sh"), [_tag], timeout: s_buildTimeout);
        Assert.That(exitCode, Is.Zero, output);
        _images.Add(_tag);
        TestContext.Progress.WriteLine(string.Join('\n', output.Split('\n').Where(l => l.StartsWith("==>", StringComparison.Ordinal) || l.Contains("STEP", StringComparison.Ordinal))));
    }

    [OneTimeTearDown]
    public async Task RemoveAsync()
    {
        foreach (var container in _containers)
        {
            await Tool.RunAsync("buildah", ["rm", container]);
        }

        foreach (var image in _images)
        {
            await Tool.RunAsync("buildah", ["rmi", "--force", image]);
        }

        // The untagged build-stage images these builds left (the stand-in base images stay, for the next build).
        await Tool.RunAsync("buildah", ["rmi", "--prune"]);
    }

    [Test]
    public async Task Image_RunsAsANumericNonRootUser_ExposesBothPorts_WithAnExecFormEntrypoint()
    {
        var config = await ImageConfigAsync(_tag);
        TestContext.Out.WriteLine(config.GetRawText());

        Assert.That(config.GetProperty("User").GetString(), Is.EqualTo("1654"));
        Assert.That(config.GetProperty("ExposedPorts").EnumerateObject().Select(p => p.Name), Is.EquivalentTo(new[] { "8080/tcp", "9090/tcp" }));
        Assert.That(config.GetProperty("Entrypoint").EnumerateArray().Select(e => e.GetString()), Is.EqualTo(new[] { "dotnet", "Mnemo.Proxy.dll" }), "exec form: no shell wraps the process, so it gets SIGTERM itself");
        Assert.That(config.TryGetProperty("Cmd", out var cmd) && cmd.ValueKind == JsonValueKind.Array && cmd.GetArrayLength() > 0, Is.False);
        Assert.That(config.GetProperty("WorkingDir").GetString(), Is.EqualTo("/app"));
    }

    [Test]
    public async Task Entrypoint_ServesHealthAndProxiesWithMemory_AsUid1654_AndStopsCleanlyOnSigterm()
    {
        await using var upstream = await FakeUpstream.StartAsync();
        var (proxyPort, managementPort) = (Ports.Free(), Ports.Free());
        var container = await ContainerAsync();
        var entrypoint = (await ImageConfigAsync(_tag)).GetProperty("Entrypoint").EnumerateArray().Select(e => e.GetString()!);

        // chroot isolation shares the host's network: the container's Kestrel listens on host loopback ports.
        using var process = MnemoProcess.Start(
            [
                "run", "--isolation", "chroot",
                "--env", $"Kestrel__Endpoints__Proxy__Url=http://127.0.0.1:{proxyPort}",
                "--env", $"Kestrel__Endpoints__Management__Url=http://127.0.0.1:{managementPort}",
                "--env", $"Mnemo__Upstream={upstream.Url}",
                container, "--", .. entrypoint,
            ],
            executable: Tool.Path("buildah"));
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}") };
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{proxyPort}") };

        var live = await Eventually.ValueAsync(
            async () =>
            {
                Assert.That(process.HasExited, Is.False, () => process.Output);
                try
                {
                    return (await management.GetAsync("/healthz/live")).StatusCode;
                }
                catch (HttpRequestException)
                {
                    return default;
                }
            },
            status => status == HttpStatusCode.OK,
            "the container's /healthz/live",
            TimeSpan.FromSeconds(60));
        Assert.That(live, Is.EqualTo(HttpStatusCode.OK));
        var ready = await management.GetAsync("/healthz/ready");
        Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.OK), await ready.Content.ReadAsStringAsync());
        TestContext.Out.WriteLine($"GET /healthz/live: {(int)live}; GET /healthz/ready: {(int)ready.StatusCode} {await ready.Content.ReadAsStringAsync()}");

        // The embedded store: a two-turn conversation through the container.
        var first = await client.SendAsync(ProxyHost.Chat("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}""", session: "in-a-container"));
        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await first.Content.ReadAsByteArrayAsync();
        var second = await client.SendAsync(ProxyHost.Chat("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Again?"}]}""", session: "in-a-container"));
        Assert.That(second.Headers.GetValues("X-Mnemo-Context-Turns").Single(), Is.EqualTo("1"));
        Assert.That(upstream.LastRequest.Messages().Select(m => m.Content), Is.EqualTo(new[] { "Hello!", "Hello! How can I assist you today?", "Again?" }));

        var dotnet = Descendants(process.Id).Single(pid => File.ReadAllText($"/proc/{pid}/comm").Trim() == "dotnet");
        var uid = File.ReadAllLines($"/proc/{dotnet}/status").Single(l => l.StartsWith("Uid:", StringComparison.Ordinal));
        Assert.That(uid.Split('\t', StringSplitOptions.RemoveEmptyEntries).Skip(1).Distinct(), Is.EqualTo(new[] { "1654" }), uid);

        // What the kubelet does: SIGTERM to the entrypoint's process.
        MnemoProcess.Terminate(dotnet);
        var exitCode = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.That(exitCode, Is.Zero, process.Output);
        Assert.That(process.Output, Does.Contain("Application is shutting down"));
    }

    [Test]
    public async Task Image_HasNoShell()
    {
        var container = await ContainerAsync();
        foreach (var command in new[] { "/bin/sh", "/bin/bash", "/usr/bin/curl" })
        {
            var (exitCode, output) = await Tool.RunAsync("buildah", ["run", "--isolation", "chroot", container, "--", command, "-c", "true"]);
            Assert.That(exitCode, Is.Not.Zero, $"{command}: {output}");
            Assert.That(output, Does.Contain("no such file or directory").IgnoreCase, command);
        }
    }

    [Test]
    public async Task RestoreLayer_IsReusedWhenOnlyTheSourcesChange()
    {
        // The build context the Dockerfile sees (its .dockerignore allowlist), with one source file changed.
        var context = Directory.CreateTempSubdirectory("mnemo-context-").FullName;
        try
        {
            var root = MnemoProcess.RepositoryRoot;
            foreach (var file in new[] { "Dockerfile", ".dockerignore", "global.json", "Directory.Build.props", "Directory.Packages.props", ".editorconfig" })
            {
                File.Copy(Path.Combine(root, file), Path.Combine(context, file));
            }

            foreach (var file in Directory.EnumerateFiles(Path.Combine(root, "proxy"), "*", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(root, file);
                if (relative.StartsWith("proxy/bin/", StringComparison.Ordinal) || relative.StartsWith("proxy/obj/", StringComparison.Ordinal))
                {
                    continue;
                }

                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(context, relative))!);
                File.Copy(file, Path.Combine(context, relative));
            }

            await File.AppendAllTextAsync(Path.Combine(context, "proxy", "Program.cs"), $"// changed {Guid.NewGuid()}\n");
            var tag = $"{_tag}-changed";
            var (exitCode, output) = await Tool.RunAsync(
                "buildah", ["bud", "--isolation", "chroot", "--pull=never", "--layers", "-t", tag, "-f", Path.Combine(context, "Dockerfile"), context], timeout: s_buildTimeout);
            Assert.That(exitCode, Is.Zero, output);
            _images.Add(tag);

            var steps = Steps(output);
            TestContext.Out.WriteLine(string.Join('\n', steps.Select(s => $"{(s.Cached ? "cached " : "built  ")} {s.Step}")));
            Assert.That(steps.Single(s => s.Step.Contains("RUN dotnet restore", StringComparison.Ordinal)).Cached, Is.True, "restore reused");
            Assert.That(steps.Single(s => s.Step.Contains("COPY proxy/ proxy/", StringComparison.Ordinal)).Cached, Is.False, "the changed sources copied");
            Assert.That(steps.Single(s => s.Step.Contains("RUN dotnet publish", StringComparison.Ordinal)).Step, Does.Contain("--no-restore"));
        }
        finally
        {
            Directory.Delete(context, recursive: true);
        }
    }

    /// <summary>Each build step and whether buildah took it from its layer cache.</summary>
    private static List<(string Step, bool Cached)> Steps(string output)
    {
        var lines = output.Split('\n');
        return lines.Select((line, i) => (line, i))
            .Where(l => l.line.Contains(" STEP ", StringComparison.Ordinal))
            .Select(l => (l.line.Trim(), l.i + 1 < lines.Length && lines[l.i + 1].StartsWith("--> Using cache", StringComparison.Ordinal)))
            .ToList();
    }

    private static async Task<JsonElement> ImageConfigAsync(string image)
    {
        var (exitCode, output) = await Tool.RunAsync("buildah", ["inspect", "--type", "image", image]);
        Assert.That(exitCode, Is.Zero, output);
        using var document = JsonDocument.Parse(output);
        return document.RootElement.GetProperty("OCIv1").GetProperty("config").Clone();
    }

    private async Task<string> ContainerAsync()
    {
        var name = $"mnemo-test-{Guid.NewGuid().ToString("N")[..8]}";
        var (exitCode, output) = await Tool.RunAsync("buildah", ["from", "--pull-never", "--name", name, _tag]);
        Assert.That(exitCode, Is.Zero, output);
        _containers.Add(name);
        return name;
    }

    /// <summary>The processes below <paramref name="pid"/>, from /proc.</summary>
    private static List<int> Descendants(int pid)
    {
        var parents = new Dictionary<int, int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var child))
            {
                continue;
            }

            try
            {
                // stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
                var stat = File.ReadAllText(Path.Combine(directory, "stat"));
                parents[child] = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
            }
        }

        var found = new List<int>();
        var frontier = new Queue<int>([pid]);
        while (frontier.TryDequeue(out var next))
        {
            foreach (var (child, parent) in parents)
            {
                if (parent == next)
                {
                    found.Add(child);
                    frontier.Enqueue(child);
                }
            }
        }

        return found;
    }
}
