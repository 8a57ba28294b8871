using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.NUnit;
using PropertyAttribute = FsCheck.NUnit.PropertyAttribute;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Tests.Dialects;

/// <summary>
/// The byte splice on generated requests of each dialect (system messages or not, string or parts content, tools,
/// Responses' string input, Anthropic's top-level system) and generated stored turns, captured as the tee captures them
/// (the dialect's request parser, its response parser, <see cref="Dialect.WriteTurnMessages"/>, <see cref="TurnCodec"/>):
/// the result is valid JSON, every other property keeps its value, and the array is the leading system items, the
/// history in order, then the request's own items.
/// </summary>
/// <remarks>FsCheck prints the seed of a failing run: replay it with <c>[Property(Replay = "…")]</c>.</remarks>
public sealed class SplicePropertyTests
{
    private static readonly Converter s_converter = new(new DialectRegistry(), new MnemoMetrics());

    [Property(MaxTest = 500)]
    public Property Splice_SameDialectHistory_GoesBetweenTheLeadingSystemItemsAndTheRequestsOwn() =>
        Prop.ForAll(Cases(cross: false).ToArbitrary(), Check);

    [Property(MaxTest = 400)]
    public Property Splice_HistoryFromAnyDialect_IsConvertedInPlace_KeepingEveryTextInOrder() =>
        Prop.ForAll(Cases(cross: true).ToArbitrary(), Check);

    private static Gen<SpliceCase> Cases(bool cross) =>
        from target in PropertyGen.Dialect
        from request in PropertyGen.Request(target)
        from turns in Gen.Choose(0, 3).SelectMany(n => Gen.ArrayOf(Turn(target, cross), n))
        select new SpliceCase(request, turns);

    private static Gen<TurnSpec> Turn(Dialect target, bool cross) =>
        from source in cross ? Gen.Frequency((1, Gen.Constant(target)), (3, PropertyGen.Dialect)) : Gen.Constant(target)
        from request in PropertyGen.Request(source, turn: true, plain: source != target)
        from stream in Gen.Elements(true, false)
        from answer in PropertyGen.Answer(source, stream)
        select new TurnSpec(request, answer);

    private static void Check(SpliceCase test)
    {
        var request = test.Request;
        var target = request.Dialect;
        var body = Encoding.UTF8.GetBytes(request.Body);
        var plan = new SplicePlan();
        var result = target.ParseRequest(body, fullHistory: false, plan);
        if (target.Id == DialectId.OllamaChat && request.TextInput is null && request.Leading.Length + request.Own.Length == 0)
        {
            // An empty messages array loads the model in Ollama: not a chat, nothing to splice into.
            Holds.That(result == ParseResult.PassThrough, $"Ollama's empty messages pass through, got {result}");
            return;
        }

        Holds.That(result == ParseResult.Splice, $"a valid request is spliced, got {result}");
        var stored = test.Turns.Select(Capture).ToArray();
        var window = ContextWindow.Choose(stored, [], 20, 0);
        var segments = window.Segments(target, s_converter, out var count, out _);
        byte[] spliced;
        bool anyHistory;
        try
        {
            var used = segments.AsSpan(0, count);
            anyHistory = used.ToArray().Any(s => !s.IsEmpty);
            spliced = new byte[Splice.Length(body.Length, plan, used)];
            var written = Splice.Write(body, plan, used, spliced);
            Holds.That(written == spliced.Length, $"wrote {written} of {spliced.Length} bytes");
        }
        finally
        {
            window.Return(segments);
        }

        if (!anyHistory)
        {
            Holds.That(spliced.AsSpan().SequenceEqual(body), "with no history the body is forwarded as received");
            return;
        }

        var text = Encoding.UTF8.GetString(spliced);
        Holds.That(ResponseParserPropertyTests.IsJson(text), $"the spliced body is valid JSON: {text}");
        using var before = JsonDocument.Parse(body);
        using var after = JsonDocument.Parse(spliced);
        var original = before.RootElement.EnumerateObject().ToList();
        var result2 = after.RootElement.EnumerateObject().ToList();
        Holds.That(original.Select(p => p.Name).SequenceEqual(result2.Select(p => p.Name)), $"the same properties in the same order: {text}");
        JsonElement? array = null;
        for (var i = 0; i < original.Count; i++)
        {
            if (original[i].Name == request.ArrayName)
            {
                array = result2[i].Value;
                continue;
            }

            Holds.That(original[i].Value.GetRawText() == result2[i].Value.GetRawText(), $"'{original[i].Name}' is unchanged: {text}");
        }

        Holds.That(array is { ValueKind: JsonValueKind.Array }, $"'{request.ArrayName}' is an array: {text}");
        var items = array!.Value.EnumerateArray().ToList();
        var leading = Elements(request.Leading);
        var own = request.TextInput is { } input ? Elements([$$"""{"role":"user","content":{{input}}}"""]) : Elements(request.Own);
        Holds.That(items.Count >= leading.Count + own.Count, $"every item of the request is kept: {text}");
        for (var i = 0; i < leading.Count; i++)
        {
            Holds.That(items[i].GetRawText() == leading[i].GetRawText(), $"leading system item {i} first, unchanged: {text}");
        }

        for (var i = 0; i < own.Count; i++)
        {
            Holds.That(items[items.Count - own.Count + i].GetRawText() == own[i].GetRawText(), $"the request's own item {i} after the history, unchanged: {text}");
        }

        var history = items.GetRange(leading.Count, items.Count - leading.Count - own.Count);
        if (stored.All(t => t.Dialect == target.Id))
        {
            var expected = stored.SelectMany(t => Elements([Encoding.UTF8.GetString(t.Messages.Span)])).ToList();
            Holds.That(history.Count == expected.Count && history.Zip(expected).All(p => p.First.GetRawText() == p.Second.GetRawText()),
                $"the history is the stored turns' messages, oldest first: {text}");
        }

        // Every text of the stored turns (user words, answers, tool arguments) is in the history, in order.
        var carried = string.Join('\u0001', history.SelectMany(Leaves));
        var from = 0;
        foreach (var leaf in stored.SelectMany(t => Elements([Encoding.UTF8.GetString(t.Messages.Span)])).SelectMany(Leaves).Where(l => l.Contains(PropertyGen.Marker)))
        {
            var at = carried.IndexOf(leaf, from, StringComparison.Ordinal);
            Holds.That(at >= 0, $"{JsonSerializer.Serialize(leaf)} is carried over, after the texts before it: {text}");
            from = at + leaf.Length;
        }
    }

    /// <summary>The turn the tee stores for a request and its answer.</summary>
    private static StoredTurn Capture(TurnSpec turn)
    {
        var dialect = turn.Request.Dialect;
        var body = Encoding.UTF8.GetBytes(turn.Request.Body);
        var plan = new SplicePlan();
        Holds.That(dialect.ParseRequest(body, fullHistory: false, plan) == ParseResult.Splice, "the turn's request is valid");
        using var parser = DialectHarness.Parse(dialect, turn.Answer.MediaType, turn.Answer.Bytes);
        Holds.That(parser.Completed && parser.Failure is null, $"the turn's answer is recorded: {parser.Failure}");
        var payload = TurnCodec.Encode(
            TurnCodec.NewId(), 0, dialect.Id, 10, parser.Usage, (Dialect: dialect, Body: body, Plan: plan, Parser: (ResponseParser)parser),
            static (writer, s) => s.Dialect.WriteTurnMessages(writer, s.Body, s.Plan, s.Parser));
        Holds.That(TurnCodec.TryRead(payload, out var stored), "the turn reads back");
        return stored;
    }

    private static List<JsonElement> Elements(string[] items) =>
        items.Length == 0 ? [] : [.. JsonDocument.Parse("[" + string.Join(",", items) + "]").RootElement.EnumerateArray()];

    /// <summary>The strings of an element, depth first; a string holding a JSON object (tool arguments) by its own strings.</summary>
    private static IEnumerable<string> Leaves(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                var value = element.GetString()!;
                if (value.StartsWith('{') && ResponseParserPropertyTests.IsJson(value))
                {
                    foreach (var leaf in Leaves(JsonDocument.Parse(value).RootElement))
                    {
                        yield return leaf;
                    }
                }
                else
                {
                    yield return value;
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    foreach (var leaf in Leaves(item))
                    {
                        yield return leaf;
                    }
                }

                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    foreach (var leaf in Leaves(property.Value))
                    {
                        yield return leaf;
                    }
                }

                break;
        }
    }

    private sealed record TurnSpec(RequestSpec Request, Answer Answer)
    {
        public override string ToString() => $"turn {Request} answered {Answer}";
    }

    private sealed record SpliceCase(RequestSpec Request, TurnSpec[] Turns)
    {
        public override string ToString() => $"{Request}\n  with {Turns.Length} turns:\n  " + string.Join("\n  ", Turns.Select(t => t.ToString()));
    }
}
