using System.Text.Json;
using System.Text.Json.Nodes;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Deployment;

/// <summary>charts/mnemo, checked with the real Helm 4 binary: lint, render, and assertions on what it renders.</summary>
public sealed class HelmChartTests
{
    private static readonly string[] s_shapes =
        ["", .. Directory.GetFiles(Path.Combine(Helm.Chart(), "ci"), "*-values.yaml").Select(Path.GetFileName).Order()!];

    [TestCaseSource(nameof(s_shapes))]
    public async Task LintStrict_PassesForTheDefaultsAndEveryCiShape(string values)
    {
        string[] arguments = values.Length == 0 ? ["lint", "--strict", Helm.Chart()] : ["lint", "--strict", Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", values)];
        var (exitCode, output) = await Helm.RunAsync(arguments);
        TestContext.Out.WriteLine($"helm {string.Join(' ', arguments)}\n{output}");
        Assert.That(exitCode, Is.Zero, output);
        Assert.That(output, Does.Contain("0 chart(s) failed"));
        Assert.That(output, Does.Not.Contain("[WARNING]").And.Not.Contain("[ERROR]"));
    }

    [TestCaseSource(nameof(s_shapes))]
    public async Task Template_RendersEveryCiShape(string values)
    {
        var manifests = values.Length == 0
            ? await Helm.TemplateAsync(Helm.Chart())
            : await Helm.TemplateAsync(Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", values));
        Assert.That(manifests.Contains("ConfigMap"), Is.True);
        Assert.That(manifests.Documents.All(d => (string?)d["metadata"]!["namespace"] == "llm"), Is.True, "everything in the release namespace");
    }

    [Test]
    public async Task Defaults_ASecureNonRootPod_WithProbesOnTheManagementPort()
    {
        var manifests = await Helm.TemplateAsync(Helm.Chart());
        var deployment = manifests.Single("Deployment");
        var pod = deployment["spec"]!["template"]!["spec"]!;
        var container = pod["containers"]![0]!;

        Assert.That((int?)deployment["spec"]!["replicas"], Is.EqualTo(1), "the embedded store is one replica's");
        Assert.That((bool?)pod["securityContext"]!["runAsNonRoot"], Is.True);
        Assert.That((int?)pod["securityContext"]!["runAsUser"], Is.EqualTo(1654));
        Assert.That((string?)pod["securityContext"]!["seccompProfile"]!["type"], Is.EqualTo("RuntimeDefault"));
        Assert.That((bool?)pod["automountServiceAccountToken"], Is.False);
        var security = container["securityContext"]!;
        Assert.That((bool?)security["readOnlyRootFilesystem"], Is.True);
        Assert.That((bool?)security["allowPrivilegeEscalation"], Is.False);
        Assert.That(security["capabilities"]!["drop"]!.AsArray().Select(c => (string?)c), Is.EqualTo(new[] { "ALL" }));
        Assert.That((string?)container["volumeMounts"]![0]!["mountPath"], Is.EqualTo("/tmp"), "the read-only root has a writable /tmp");

        var ports = container["ports"]!.AsArray().ToDictionary(p => (string)p!["name"]!, p => (int)p!["containerPort"]!);
        Assert.That(ports, Is.EqualTo(new Dictionary<string, int> { ["proxy"] = 8080, ["management"] = 9090 }));
        foreach (var (probe, path) in new[] { ("livenessProbe", "/healthz/live"), ("readinessProbe", "/healthz/ready"), ("startupProbe", "/healthz/live") })
        {
            Assert.That((string?)container[probe]!["httpGet"]!["port"], Is.EqualTo("management"), probe);
            Assert.That((string?)container[probe]!["httpGet"]!["path"], Is.EqualTo(path), probe);
        }

        var service = manifests.Single("Service");
        Assert.That(service["spec"]!["ports"]!.AsArray().Select(p => ((string?)p!["name"], (int?)p["port"])),
            Is.EqualTo(new (string?, int?)[] { ("proxy", 8080), ("management", 9090) }));
        var selector = service["spec"]!["selector"]!.AsObject();
        var podLabels = deployment["spec"]!["template"]!["metadata"]!["labels"]!.AsObject();
        Assert.That(selector.All(l => (string?)podLabels[l.Key] == (string?)l.Value), Is.True, "the Service selects the pods");
        Assert.That((string?)podLabels["app.kubernetes.io/name"], Is.EqualTo("mnemo"));
        Assert.That((string?)podLabels["app.kubernetes.io/instance"], Is.EqualTo("mnemo-test"));
        Assert.That(manifests.Documents.All(d => (string?)d["metadata"]!["labels"]?["app.kubernetes.io/managed-by"] is "Helm" or null), Is.True);
    }

    [Test]
    public async Task ShutdownTiming_GracePeriodCoversThePreStopPauseAndTheAppsShutdownTimeout()
    {
        var manifests = await Helm.TemplateAsync(Helm.Chart(), "--set", "config.shutdownTimeoutSeconds=45", "--set", "lifecycle.preStopSleepSeconds=10");
        var pod = manifests.Single("Deployment")["spec"]!["template"]!["spec"]!;
        var config = manifests.Single("ConfigMap")["data"]!;

        Assert.That((int?)pod["containers"]![0]!["lifecycle"]!["preStop"]!["sleep"]!["seconds"], Is.EqualTo(10));
        Assert.That((string?)config["Mnemo__ShutdownTimeout"], Is.EqualTo("00:00:45"));
        Assert.That((int?)pod["terminationGracePeriodSeconds"], Is.EqualTo(60), "10 s pause + 45 s shutdown + 5 s margin");

        var (exitCode, output) = await Helm.RunAsync("template", "t", Helm.Chart(), "--set", "config.shutdownTimeoutSeconds=45", "--set", "terminationGracePeriodSeconds=30");
        Assert.That(exitCode, Is.Not.Zero);
        Assert.That(output, Does.Contain("terminationGracePeriodSeconds must be at least"));
    }

    [Test]
    public async Task RenderedSettings_AreAcceptedByTheProxy()
    {
        // The ConfigMap is the proxy's whole configuration: start the real binary with it.
        var data = (await Helm.TemplateAsync(Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", "autoscaling-values.yaml")))
            .Single("ConfigMap")["data"]!.AsObject().ToDictionary(p => p.Key, p => (string?)p.Value);
        Assert.That(data["Mnemo__Memory__Consistency"], Is.EqualTo("Strict"), "several replicas on one Redis: Strict");
        data["Kestrel__Endpoints__Proxy__Url"] = $"http://127.0.0.1:{Ports.Free()}";
        var management = Ports.Free();
        data["Kestrel__Endpoints__Management__Url"] = $"http://127.0.0.1:{management}";
        using var process = MnemoProcess.StartBuilt([], data);
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{management}") };
        var live = await Eventually.ValueAsync(
            async () =>
            {
                Assert.That(process.HasExited, Is.False, () => process.Output);
                try
                {
                    return (int)(await client.GetAsync("/healthz/live")).StatusCode;
                }
                catch (HttpRequestException)
                {
                    return 0;
                }
            },
            status => status == 200,
            "the proxy to start with the chart's settings",
            TimeSpan.FromSeconds(30));
        Assert.That(live, Is.EqualTo(200));
    }

    [Test]
    public async Task RedisConnectionString_GoesIntoASecretTheContainerReads()
    {
        var manifests = await Helm.TemplateAsync(Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", "redis-values.yaml"));
        var secret = manifests.Single("Secret");
        var data = secret["data"]!.AsObject();
        Assert.That(System.Text.Encoding.UTF8.GetString(Convert.FromBase64String((string)data["redis-connection-string"]!)), Does.StartWith("redis-sentinel-0.redis:26379,").And.Contain("serviceName=mymaster"));
        Assert.That(data.ContainsKey("admin-token"), Is.True);

        var env = manifests.Single("Deployment")["spec"]!["template"]!["spec"]!["containers"]![0]!["env"]!.AsArray();
        var redis = env.Single(e => (string?)e!["name"] == "ConnectionStrings__Redis")!["valueFrom"]!["secretKeyRef"]!;
        Assert.That((string?)redis["name"], Is.EqualTo((string?)secret["metadata"]!["name"]));
        Assert.That((string?)redis["key"], Is.EqualTo("redis-connection-string"));
        Assert.That(manifests.Single("ConfigMap").ToJsonString(), Does.Not.Contain("redis-master"), "no secret in the ConfigMap");
        Assert.That((int?)manifests.Single("PodDisruptionBudget")["spec"]!["minAvailable"], Is.EqualTo(1));
    }

    [Test]
    public async Task ExistingSecret_IsReferencedAndNoSecretIsCreated()
    {
        var manifests = await Helm.TemplateAsync(Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", "existing-secret-values.yaml"));
        Assert.That(manifests.Contains("Secret"), Is.False);
        var env = manifests.Single("Deployment")["spec"]!["template"]!["spec"]!["containers"]![0]!["env"]!.AsArray()
            .ToDictionary(e => (string)e!["name"]!, e => e!["valueFrom"]!["secretKeyRef"]!);
        Assert.That(((string?)env["ConnectionStrings__Redis"]["name"], (string?)env["ConnectionStrings__Redis"]["key"]), Is.EqualTo(("mnemo-credentials", "redis")));
        Assert.That(((string?)env["Mnemo__Admin__Token"]["name"], (string?)env["Mnemo__Admin__Token"]["key"]), Is.EqualTo(("mnemo-credentials", "admin-token")));
    }

    [TestCase("replicaCount=2")]
    [TestCase("autoscaling.enabled=true")]
    public async Task EmbeddedStoreWithMoreThanOnePod_IsRefused(string setting)
    {
        var (exitCode, output) = await Helm.RunAsync("template", "t", Helm.Chart(), "--set", setting);
        Assert.That(exitCode, Is.Not.Zero);
        Assert.That(output, Does.Contain("every pod would see a different history"));
    }

    [TestCase("config.memory.mode=Sometimes", "config.memory.mode")]
    [TestCase("config.upstream=not-a-url", "config.upstream")]
    [TestCase("service.port=0", "service.port")]
    [TestCase("config.memory.ttl=forever", "config.memory.ttl")]
    [TestCase("config.memory.consistency=Eventual", "config.memory.consistency")]
    [TestCase("unknownKey=1", "unknownKey")]
    public async Task InvalidValue_IsRejectedByTheSchema(string setting, string key)
    {
        var (exitCode, output) = await Helm.RunAsync("template", "t", Helm.Chart(), "--set", setting);
        Assert.That(exitCode, Is.Not.Zero);
        Assert.That(output, Does.Contain("schema").And.Contain(key.Split('.')[^1]));
    }

    [Test]
    public async Task Monitoring_ServiceMonitorScrapesTheManagementPort_AndTheAlertRulesPassPromtool()
    {
        var manifests = await Helm.TemplateAsync(Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", "monitoring-values.yaml"));
        var endpoint = manifests.Single("ServiceMonitor")["spec"]!["endpoints"]![0]!;
        Assert.That(((string?)endpoint["port"], (string?)endpoint["path"]), Is.EqualTo(("management", "/metrics")));

        var rule = manifests.Single("PrometheusRule");
        var alerts = rule["spec"]!["groups"]![0]!["rules"]!.AsArray().Select(r => (string?)r!["alert"]).ToList();
        Assert.That(alerts, Is.EquivalentTo(new[] { "MnemoOverheadHigh", "MnemoDegradedRequests", "MnemoWriteBackDropping", "MnemoWriteBackQueueBacklog", "MnemoRedisSlow" }));

        var file = Path.Combine(Path.GetTempPath(), $"mnemo-rules-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(file, Manifests.RulesFile(rule));
        try
        {
            var (exitCode, output) = await Tool.RunAsync("promtool", ["check", "rules", file]);
            TestContext.Out.WriteLine($"promtool check rules\n{output}");
            Assert.That(exitCode, Is.Zero, output);
            Assert.That(output, Does.Contain("SUCCESS: 5 rules found"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task GrafanaDashboard_IsAConfigMapGrafanaDiscovers_WithEveryPanelOnMnemoMetrics()
    {
        var manifests = await Helm.TemplateAsync(Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", "monitoring-values.yaml"));
        var map = manifests.OfKind("ConfigMap").Single(c => ((string)c["metadata"]!["name"]!).EndsWith("-dashboard", StringComparison.Ordinal));
        Assert.That((string?)map["metadata"]!["labels"]!["grafana_dashboard"], Is.EqualTo("1"));
        using var dashboard = JsonDocument.Parse((string)map["data"]!["mnemo.json"]!);
        var expressions = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray()).Select(t => t.GetProperty("expr").GetString()!).ToList();
        Assert.That(expressions, Is.Not.Empty);
        Assert.That(expressions, Has.All.Contains("mnemo_"));
        var text = string.Join("\n", expressions);
        foreach (var metric in new[] { "mnemo_stage_duration_seconds_bucket", "mnemo_overhead_seconds_bucket", "mnemo_requests_total", "mnemo_tokens_total", "mnemo_writeback_total", "mnemo_writeback_queue_depth" })
        {
            Assert.That(text, Does.Contain(metric));
        }
    }

    [Test]
    public async Task NetworkPolicy_LetsOnlyListedNamespacesReachTheManagementPort()
    {
        var manifests = await Helm.TemplateAsync(Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", "autoscaling-values.yaml"));
        var rules = manifests.Single("NetworkPolicy")["spec"]!["ingress"]!.AsArray();
        var management = rules.Single(r => (int?)r!["ports"]![0]!["port"] == 9090)!;
        var namespaces = management["from"]!.AsArray().Where(p => p!["namespaceSelector"] is not null)
            .Select(p => (string?)p!["namespaceSelector"]!["matchLabels"]!["kubernetes.io/metadata.name"]);
        Assert.That(namespaces, Is.EqualTo(new[] { "monitoring" }));
        Assert.That(management["from"]!.AsArray().All(p => p!["namespaceSelector"] is not null || p!["podSelector"]!["matchLabels"]!["app.kubernetes.io/component"]!.GetValue<string>() == "helm-test"), Is.True,
            "besides the monitoring namespace, only this release's helm test pod");
        var proxy = rules.Single(r => (int?)r!["ports"]![0]!["port"] == 8080)!;
        Assert.That((string?)proxy["from"]![0]!["namespaceSelector"]!["matchLabels"]!["kubernetes.io/metadata.name"], Is.EqualTo("chat"));
    }

    [Test]
    public async Task Autoscaling_HpaOwnsTheReplicaCount_AndAPdbKeepsOnePodUp()
    {
        var manifests = await Helm.TemplateAsync(Helm.Chart(), "-f", Path.Combine(Helm.Chart(), "ci", "autoscaling-values.yaml"));
        Assert.That(manifests.Single("Deployment")["spec"]!.AsObject().ContainsKey("replicas"), Is.False);
        var hpa = manifests.Single("HorizontalPodAutoscaler")["spec"]!;
        Assert.That(((int?)hpa["minReplicas"], (int?)hpa["maxReplicas"]), Is.EqualTo((2, 6)));
        Assert.That((string?)hpa["scaleTargetRef"]!["kind"], Is.EqualTo("Deployment"));
        Assert.That(manifests.Contains("PodDisruptionBudget"), Is.True);
    }

    [Test]
    public async Task HelmTest_ChecksReadinessOnTheManagementPort()
    {
        var test = (await Helm.TemplateAsync(Helm.Chart())).OfKind("Pod").Single();
        Assert.That((string?)test["metadata"]!["annotations"]!["helm.sh/hook"], Is.EqualTo("test"));
        var command = string.Join(" ", test["spec"]!["containers"]![0]!["command"]!.AsArray().Select(c => (string?)c));
        Assert.That(command, Does.StartWith("wget").And.EndWith("http://mnemo-test:9090/healthz/ready"));
        Assert.That((bool?)test["spec"]!["securityContext"]!["runAsNonRoot"], Is.True);
        var selector = (await Helm.TemplateAsync(Helm.Chart())).Single("Service")["spec"]!["selector"]!.AsObject();
        Assert.That(selector.All(l => (string?)test["metadata"]!["labels"]![l.Key] == (string?)l.Value), Is.False, "the Service does not send traffic to the test pod");
    }

    [Test]
    public async Task SidecarExample_RunsMnemoInTheAppsPods_WhichCallItOnLocalhost()
    {
        var example = Helm.Chart(Path.Combine("examples", "chat-app"));
        var (built, output) = await Helm.RunAsync("dependency", "build", example);
        Assert.That(built, Is.Zero, output);
        var manifests = await Helm.TemplateAsync(example);

        Assert.That(manifests.OfKind("Deployment").Select(d => (string?)d["metadata"]!["name"]), Is.EqualTo(new[] { "mnemo-test-chat-app" }), "no Deployment of Mnemo's own");
        Assert.That(manifests.Contains("Service"), Is.False);
        var pod = manifests.Single("Deployment")["spec"]!["template"]!["spec"]!;
        var sidecar = pod["initContainers"]!.AsArray().Single()!;
        Assert.That((string?)sidecar["name"], Is.EqualTo("mnemo"));
        Assert.That((string?)sidecar["restartPolicy"], Is.EqualTo("Always"), "a native sidecar: started before the app, stopped after it");
        Assert.That((string?)sidecar["envFrom"]![0]!["configMapRef"]!["name"], Is.EqualTo((string?)manifests.Single("ConfigMap")["metadata"]!["name"]));
        Assert.That((string?)sidecar["env"]![0]!["valueFrom"]!["secretKeyRef"]!["name"], Is.EqualTo((string?)manifests.Single("Secret")["metadata"]!["name"]));
        var app = pod["containers"]!.AsArray().Single()!;
        Assert.That((string?)app["env"]!.AsArray().Single(e => (string?)e!["name"] == "OPENAI_BASE_URL")!["value"], Is.EqualTo("http://localhost:8080/v1"));
        Assert.That(pod["volumes"]!.AsArray().Select(v => (string?)v!["name"]), Does.Contain("mnemo-tmp"));
        Assert.That((int?)pod["terminationGracePeriodSeconds"], Is.EqualTo(40));
        var monitor = manifests.Single("PodMonitor")["spec"]!;
        Assert.That((string?)monitor["selector"]!["matchLabels"]!["app.kubernetes.io/name"], Is.EqualTo("chat-app"));
    }

    [Test]
    public void ValuesYaml_EveryKeyHasACommentAbove()
    {
        var path = Path.Combine(Helm.Chart(), "values.yaml");
        var lines = File.ReadAllLines(path);
        var key = new System.Text.RegularExpressions.Regex(@"^\s*[A-Za-z_][A-Za-z0-9_.-]*:");
        var uncommented = lines.Select((line, i) => (line, i))
            .Where(l => key.IsMatch(l.line) && (l.i == 0 || !lines[l.i - 1].TrimStart().StartsWith('#')))
            .Select(l => $"values.yaml:{l.i + 1}: {l.line.Trim()}")
            .ToList();

        Assert.That(uncommented, Is.Empty);
        Assert.That(lines.Count(l => key.IsMatch(l)), Is.GreaterThan(100), "the rule saw the keys");
    }
}
