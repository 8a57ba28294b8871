using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.NUnit;
using PropertyAttribute = FsCheck.NUnit.PropertyAttribute;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Tests.Dialects;

/// <summary>
/// Every dialect's response parsers: however the upstream's bytes are chunked (every byte alone, cuts inside a UTF-8
/// sequence or between CR and LF), the stored turn is the same as when the body comes in one piece; and no bytes
/// whatsoever make a parser throw into the response tee.
/// </summary>
/// <remarks>FsCheck prints the seed of a failing run: replay it with <c>[Property(Replay = "…")]</c>.</remarks>
public sealed class ResponseParserPropertyTests
{
    private static readonly Fixture[] s_fixtures = LoadFixtures();

    [Property(MaxTest = 500)]
    public Property Parse_AnyFixtureInAnyChunking_GivesTheSameTurnAsWhole() =>
        Prop.ForAll(
            Gen.Elements(s_fixtures).SelectMany(f => PropertyGen.Cuts(f.Bytes).Select(cuts => new Chunked(f.Dialect, f.MediaType, f.Bytes, cuts, f.Name))).ToArbitrary(),
            chunked =>
            {
                var whole = Run(chunked.Dialect, chunked.MediaType, chunked.Bytes, []);
                var parts = Run(chunked.Dialect, chunked.MediaType, chunked.Bytes, chunked.Cuts);
                Holds.That(parts == whole, $"chunked {parts} but whole {whole}");
            });

    [Test]
    public void Fixtures_CoverEveryDialect_StreamedAndWhole()
    {
        foreach (var dialect in PropertyGen.Dialects)
        {
            var kinds = s_fixtures.Where(f => f.Dialect == dialect).Select(f => f.MediaType == "application/json").Distinct().Count();
            Assert.That(kinds, Is.EqualTo(2), dialect.Id.ToString());
        }

        // The successful fixtures are recorded: a property comparing two failures only would prove little.
        Assert.That(s_fixtures.Count(f => Run(f.Dialect, f.MediaType, f.Bytes, []).Completed), Is.GreaterThanOrEqualTo(20));
    }

    [Property(MaxTest = 800)]
    public Property Parse_GeneratedAnswerInAnyChunking_IsCompleteAndTheSameAsWhole() =>
        Prop.ForAll(
            (from dialect in PropertyGen.Dialect
             from stream in Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false)))
             from answer in PropertyGen.Answer(dialect, stream)
             from cuts in PropertyGen.Cuts(answer.Bytes)
             select new Chunked(dialect, answer.MediaType, answer.Bytes, cuts, answer.ToString()) { Expected = answer }).ToArbitrary(),
            chunked =>
            {
                var whole = Run(chunked.Dialect, chunked.MediaType, chunked.Bytes, []);
                Holds.That(whole.Completed && whole.Failure is null, $"the generated answer is recorded: {whole}");
                Holds.That(whole.Usage.Input >= 0 && whole.Usage.Output >= 0, $"usage read: {whole.Usage}");
                AssertCarries(whole.Answer!, chunked.Expected!);

                var parts = Run(chunked.Dialect, chunked.MediaType, chunked.Bytes, chunked.Cuts);
                Holds.That(parts == whole, $"chunked {parts} but whole {whole}");
            });

    [Property(MaxTest = 800)]
    public Property Parse_ArbitraryBytes_NeverThrows_AndACompletedAnswerIsValidJson() =>
        Prop.ForAll(
            (from dialect in PropertyGen.Dialect
             from stream in Gen.Elements(true, false)
             from answer in PropertyGen.Answer(dialect, stream)
             from bytes in Gen.Frequency((1, PropertyGen.Soup), (2, PropertyGen.Damage(answer.Bytes)))
             from mediaType in Gen.Elements(answer.MediaType, answer.MediaType, "text/event-stream", "application/json", "application/x-ndjson")
             from cuts in PropertyGen.Cuts(bytes)
             where dialect.CreateResponseParser(mediaType) is not null
             select new Chunked(dialect, mediaType, bytes, cuts, Encoding.UTF8.GetString(bytes))).ToArbitrary(),
            chunked =>
            {
                var outcome = Run(chunked.Dialect, chunked.MediaType, chunked.Bytes, chunked.Cuts);
                if (outcome.Completed && outcome.Failure is null)
                {
                    Holds.That(IsJson("[" + outcome.Answer + "]"), $"a recorded answer is valid JSON: {outcome.Answer}");
                }
            });

    /// <summary>The stored answer holds the text the deltas add up to, and each call's arguments as an object equal to the one sent.</summary>
    private static void AssertCarries(string answer, Answer expected)
    {
        using var document = JsonDocument.Parse("[" + answer + "]");
        var strings = new List<string>();
        var objects = new List<JsonElement>();
        Collect(document.RootElement, strings, objects);
        if (expected.Text.Length > 0)
        {
            Holds.That(strings.Contains(expected.Text), $"the answer's text {JsonSerializer.Serialize(expected.Text)} is stored whole in {answer}");
        }

        foreach (var arguments in expected.CallArguments)
        {
            using var sent = JsonDocument.Parse(arguments);
            var found = strings.Exists(s => IsJson(s) && JsonElement.DeepEquals(JsonDocument.Parse(s).RootElement, sent.RootElement))
                || objects.Exists(o => JsonElement.DeepEquals(o, sent.RootElement));
            Holds.That(found, $"the call's arguments {arguments} are stored in {answer}");
        }
    }

    private static void Collect(JsonElement element, List<string> strings, List<JsonElement> objects)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                strings.Add(element.GetString()!);
                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    Collect(item, strings, objects);
                }

                break;
            case JsonValueKind.Object:
                objects.Add(element);
                foreach (var property in element.EnumerateObject())
                {
                    Collect(property.Value, strings, objects);
                }

                break;
        }
    }

    internal static bool IsJson(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Feeds <paramref name="bytes"/> cut at <paramref name="cuts"/>, ends, and reads what the tee would store.</summary>
    internal static ParsedTurn Run(Dialect dialect, string mediaType, byte[] bytes, int[] cuts)
    {
        using var parser = dialect.CreateResponseParser(mediaType)!;
        var previous = 0;
        foreach (var cut in cuts)
        {
            parser.Feed(bytes.AsSpan(previous, cut - previous));
            previous = cut;
        }

        parser.Feed(bytes.AsSpan(previous));
        parser.End();
        return new ParsedTurn(parser.Completed, parser.Failure, parser.Usage, parser.OutputBytes, parser.Completed && parser.Failure is null ? DialectHarness.Answer(parser) : null);
    }

    private static Fixture[] LoadFixtures()
    {
        var list = new List<Fixture>();
        foreach (var dialect in PropertyGen.Dialects)
        {
            foreach (var path in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Fixtures", dialect.Id.ToString())).Order())
            {
                var mediaType = Path.GetExtension(path) switch
                {
                    ".sse" => "text/event-stream",
                    ".ndjson" => "application/x-ndjson",
                    ".json" => "application/json",
                    _ => null,
                };
                if (mediaType is not null)
                {
                    list.Add(new Fixture(dialect, mediaType, File.ReadAllBytes(path), $"{dialect.Id}/{Path.GetFileName(path)}"));
                }
            }
        }

        return [.. list];
    }

    private sealed record Fixture(Dialect Dialect, string MediaType, byte[] Bytes, string Name)
    {
        public override string ToString() => Name;
    }

    private sealed record Chunked(Dialect Dialect, string MediaType, byte[] Bytes, int[] Cuts, string Name)
    {
        public Answer? Expected { get; init; }

        public override string ToString() => $"{PropertyGen.Cap(Name)} cut at [{PropertyGen.Cap(string.Join(",", Cuts))}]";
    }
}

/// <summary>What a response parser leaves for the stored turn.</summary>
internal readonly record struct ParsedTurn(bool Completed, string? Failure, TokenUsage Usage, int OutputBytes, string? Answer);

/// <summary>A property's check: throws (FsCheck reports the case and its seed) rather than recording an NUnit assertion per shrink step.</summary>
internal static class Holds
{
    public static void That(bool condition, string message)
    {
        if (!condition)
        {
            throw new PropertyFailedException(message);
        }
    }
}

internal sealed class PropertyFailedException(string message) : Exception(message);
