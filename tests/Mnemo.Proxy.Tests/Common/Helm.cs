using System.Text.RegularExpressions;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>The real Helm 4 binary the test command fetched (tests/tools.sh), and the manifests it renders.</summary>
internal static class Helm
{
    public static string Binary
    {
        get
        {
            var path = Environment.GetEnvironmentVariable("MNEMO_HELM") is { Length: > 0 } configured
                ? configured
                : System.IO.Path.Combine(MnemoProcess.RepositoryRoot, ".tools", "helm", "helm");
            return File.Exists(path) ? path : throw new InvalidOperationException($"Helm not found at {path}; run the test command (tests/run.sh), which fetches it.");
        }
    }

    public static string Chart(string name = "mnemo") => System.IO.Path.Combine(MnemoProcess.RepositoryRoot, "charts", name);

    public static Task<(int ExitCode, string Output)> RunAsync(params string[] arguments) => Tool.RunAsync(Binary, arguments);

    /// <summary><c>helm template</c>; fails the test with Helm's output when it cannot render.</summary>
    public static async Task<Manifests> TemplateAsync(string chart, params string[] arguments)
    {
        var (exitCode, output) = await RunAsync(["template", "mnemo-test", chart, "--namespace", "llm", .. arguments]);
        Assert.That(exitCode, Is.Zero, output);
        return Manifests.Parse(output);
    }
}

/// <summary>Rendered Kubernetes objects, as JSON nodes.</summary>
internal sealed partial class Manifests(List<JsonObject> documents)
{
    public IReadOnlyList<JsonObject> Documents { get; } = documents;

    public static Manifests Parse(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return new Manifests(stream.Documents.Select(d => ToJson(d.RootNode)).OfType<JsonObject>().ToList());
    }

    public IEnumerable<JsonObject> OfKind(string kind) => Documents.Where(d => (string?)d["kind"] == kind);

    public JsonObject Single(string kind)
    {
        var matches = OfKind(kind).ToList();
        Assert.That(matches, Has.Count.EqualTo(1), $"exactly one {kind}");
        return matches[0];
    }

    public bool Contains(string kind) => OfKind(kind).Any();

    /// <summary>A PrometheusRule's groups as a plain Prometheus rules file (what the Operator hands Prometheus).</summary>
    public static string RulesFile(JsonObject prometheusRule) =>
        JsonSerializer.Serialize(new JsonObject { ["groups"] = prometheusRule["spec"]!["groups"]!.DeepClone() }); // JSON is YAML.

    /// <summary>Quoted scalars are strings; plain ones are numbers, booleans or null when they read as such (YAML 1.2 core schema).</summary>
    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(p => KeyValuePair.Create(((YamlScalarNode)p.Key).Value!, ToJson(p.Value)))),
        YamlSequenceNode list => new JsonArray(list.Children.Select(ToJson).ToArray()),
        YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "null" or "~" } => null,
        YamlScalarNode { Style: ScalarStyle.Plain, Value: "true" or "false" } scalar => JsonValue.Create(scalar.Value == "true"),
        // Parsed from JSON text, a number converts to whichever numeric type the assertion reads it as.
        YamlScalarNode { Style: ScalarStyle.Plain } scalar when JsonNumber().IsMatch(scalar.Value!) => JsonNode.Parse(scalar.Value!),
        YamlScalarNode scalar => JsonValue.Create(scalar.Value),
        _ => throw new NotSupportedException(node.NodeType.ToString()),
    };

    [GeneratedRegex(@"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")]
    private static partial Regex JsonNumber();
}
