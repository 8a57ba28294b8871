using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.NUnit;
using PropertyAttribute = FsCheck.NUnit.PropertyAttribute;
using Mnemo.Proxy.Dialects;

namespace Mnemo.Proxy.Tests.Dialects;

/// <summary>
/// Every dialect's request parser on whatever a client may send: JSON of any shape (the dialects' own property names
/// with values of wrong types, repeated names, escapes of invalid UTF-16), any bytes, and valid bodies cut short or with
/// a byte flipped. It never throws; a rejection says why without quoting the body; an accepted body splices into valid JSON.
/// </summary>
/// <remarks>FsCheck prints the seed of a failing run: replay it with <c>[Property(Replay = "…")]</c>.</remarks>
public sealed class ParserPropertyTests
{
    private static readonly Dictionary<Mnemo.Proxy.Metrics.DialectId, Answer> s_answers = PropertyGen.Dialects.ToDictionary(
        d => d.Id, d => Answers.Make(d, stream: false, [("ǂ ok", "\"ǂ ok\"")], [], 1, ["\n"], 1, 1));

    private static readonly byte[] s_historyItem = """{"role":"user","content":"h"}"""u8.ToArray();

    [Property(MaxTest = 2000)]
    public Property ParseRequest_ArbitraryJson_NeverThrows_AndIsAcceptedOnlyWhenSpliceable() =>
        Prop.ForAll(
            (from dialect in PropertyGen.Dialect
             from body in Gen.Frequency(
                 (6, PropertyGen.TopLevelObject),
                 (1, PropertyGen.Value(3)),
                 (1, PropertyGen.TopLevelObject.Select(b => "\uFEFF" + b)),
                 (1, PropertyGen.TopLevelObject.SelectMany(b => Gen.Elements(" x", "}", ",", "{}", "\0", " // c").Select(tail => b + tail))))
             select new Body(dialect, Encoding.UTF8.GetBytes(body))).ToArbitrary(),
            Check);

    [Property(MaxTest = 1000)]
    public Property ParseRequest_ArbitraryBytesAndDamagedBodies_NeverThrow() =>
        Prop.ForAll(
            (from dialect in PropertyGen.Dialect
             from bytes in Gen.Frequency(
                 (1, PropertyGen.Soup),
                 (3, PropertyGen.Request(dialect).SelectMany(r => PropertyGen.Damage(Encoding.UTF8.GetBytes(r.Body)))))
             select new Body(dialect, bytes)).ToArbitrary(),
            Check);

    private static void Check(Body body)
    {
        foreach (var fullHistory in (bool[])[false, true])
        {
            var plan = new SplicePlan();
            var result = body.Dialect.ParseRequest(body.Bytes, fullHistory, plan);
            switch (result.Outcome)
            {
                case ParseOutcome.Invalid:
                    Holds.That(!string.IsNullOrWhiteSpace(result.Error), "a rejection says why");
                    Holds.That(!result.Error!.Contains(PropertyGen.Marker, StringComparison.Ordinal), $"'{result.Error}' quotes the body's text");
                    Holds.That(!QuotesBody(result.Error, Encoding.UTF8.GetString(body.Bytes)), $"'{result.Error}' quotes the body");
                    break;
                case ParseOutcome.Splice:
                    Holds.That(result.Error is null, "an accepted body has no error");
                    CheckPlan(body.Bytes, plan);
                    CheckCapture(body.Dialect, body.Bytes, plan);
                    break;
                default:
                    Holds.That(result.Error is null, "a pass-through has no error");
                    break;
            }
        }
    }

    /// <summary>The plan's ranges lie in the body, and a valid body with a history message spliced in is still valid JSON.</summary>
    private static void CheckPlan(byte[] body, SplicePlan plan)
    {
        Holds.That(0 <= plan.Start && plan.Start <= plan.End && plan.End <= body.Length, $"splice range {plan.Start}..{plan.End} in {body.Length} bytes");
        foreach (var input in plan.Inputs)
        {
            var (offset, length) = input.GetOffsetAndLength(body.Length);
            Holds.That(offset >= plan.End || offset + length <= plan.Start || plan.InputIsText, "an input lies outside the replaced range");
        }

        if (!ResponseParserPropertyTests.IsJson(Encoding.UTF8.GetString(body)))
        {
            // Invalid UTF-8 inside a string passes the reader; it is the body reader's to reject, not the splice's to fix.
            return;
        }

        ReadOnlyMemory<byte>[] segments = [s_historyItem];
        var spliced = new byte[Splice.Length(body.Length, plan, segments)];
        var written = Splice.Write(body, plan, segments, spliced);
        Holds.That(written == spliced.Length, $"wrote {written} of {spliced.Length}");
        var text = Encoding.UTF8.GetString(spliced);
        Holds.That(ResponseParserPropertyTests.IsJson(text), $"the spliced body is valid JSON: {text}");
    }

    /// <summary>What the tee does with an accepted body once the answer is in: it never throws, and stores valid JSON for a valid body.</summary>
    private static void CheckCapture(Dialect dialect, byte[] body, SplicePlan plan)
    {
        if (plan.Inputs.Count > 0 && !plan.InputIsText)
        {
            dialect.ContinuesToolExchange(body.AsSpan()[plan.Inputs[0]]);
        }

        var answer = s_answers[dialect.Id];
        using var parser = DialectHarness.Parse(dialect, answer.MediaType, answer.Bytes);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            dialect.WriteTurnMessages(writer, body, plan, parser);
            writer.WriteEndArray();
        }

        if (ResponseParserPropertyTests.IsJson(Encoding.UTF8.GetString(body)))
        {
            var stored = Encoding.UTF8.GetString(buffer.WrittenSpan);
            Holds.That(ResponseParserPropertyTests.IsJson(stored), $"the stored turn is valid JSON: {stored}");
        }
    }

    /// <summary>Whether the error holds 12 characters in a row of the body (our messages name properties, never more).</summary>
    private static bool QuotesBody(string error, string body)
    {
        const int Window = 12;
        for (var i = 0; i + Window <= error.Length; i++)
        {
            if (body.AsSpan().IndexOf(error.AsSpan(i, Window), StringComparison.Ordinal) >= 0)
            {
                return true;
            }
        }

        return false;
    }

    private sealed record Body(Dialect Dialect, byte[] Bytes)
    {
        public override string ToString() => $"{Dialect.Id} {PropertyGen.Cap(JsonSerializer.Serialize(Encoding.UTF8.GetString(Bytes)))} ({Convert.ToHexString(Bytes.AsSpan(0, Math.Min(Bytes.Length, 64)))}…)";
    }
}
