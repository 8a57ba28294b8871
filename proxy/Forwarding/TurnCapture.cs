using System.Text.Unicode;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Forwarding;

/// <summary>Makes the stored turn of a completed exchange: the request's new inputs and the parsed answer, in the dialect's own format.</summary>
internal sealed class TurnCapture(TimeProvider time, IOptions<MemoryOptions> memory, ILogger<TurnCapture> logger)
{
    private readonly int _maxTurnBytes = memory.Value.MaxTurnBytes;

    /// <summary>
    /// The turn to store, or null (logged with a fixed reason) when the answer failed, was cut or could not be read.
    /// Called by the tee when the answer's last event has been read; a response that fails after that is undone by the
    /// middleware when it completes.
    /// </summary>
    public Turn? Capture(Exchange exchange)
    {
        if (exchange.UpstreamStatus is < 200 or > 299)
        {
            return null;
        }

        var parser = exchange.Parser;
        if (parser is { TooLarge: true })
        {
            exchange.NotStored = NotStoredReason.TooLarge;
            Log.AnswerNotRecorded(logger, exchange.DialectId.Label(), parser.Failure!);
            return null;
        }

        if (parser is null || !parser.Completed || parser.Failure is not null)
        {
            Log.AnswerNotRecorded(logger, exchange.DialectId.Label(),
                exchange.NotRecordable ?? parser?.Failure ?? "the stream ended before the answer was complete");
            return null;
        }

        // Called from the tee, before the answer's last bytes go on: whatever goes wrong in here, the answer still
        // reaches the client; it is just not stored.
        try
        {
            return Encode(exchange, parser);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Log.AnswerNotRecorded(logger, exchange.DialectId.Label(), "the turn could not be encoded (" + ex.GetType().Name + ")");
            return null;
        }
    }

    private Turn? Encode(Exchange exchange, ResponseParser parser)
    {
        var id = TurnCodec.NewId();
        var plan = exchange.Plan!;
        var body = exchange.Body!.Span;

        // A bare-string input (Responses) is a user message, never a tool result.
        var continues = plan.Inputs.Count > 0 && !plan.InputIsText && exchange.Dialect!.ContinuesToolExchange(body[plan.Inputs[0]]);
        var model = Model(body, plan.Model);
        var timestamp = time.GetUtcNow().ToUnixTimeMilliseconds();
        var payload = TurnCodec.Encode(
            id,
            timestamp,
            exchange.DialectId,
            EstimateTokens(plan.InputBytes, parser),
            parser.Usage,
            exchange,
            static (writer, state) => state.Dialect!.WriteTurnMessages(writer, state.Body!.Span, state.Plan!, state.Parser!),
            continues,
            model,
            static (elements, state) => Pairing.Shape(state.Dialect!, elements, state.Parser!.AnswerItemIds));

        if (payload.Length > _maxTurnBytes)
        {
            exchange.NotStored = NotStoredReason.TooLarge;
            Log.AnswerNotRecorded(logger, exchange.DialectId.Label(), "the turn is larger than Mnemo:Memory:MaxTurnBytes allows");
            return null;
        }

        // Answer text is kept as the upstream escaped it: bytes that are not UTF-8 would make the element unreadable,
        // replayed to the upstream on every later request. (Escapes of half a surrogate pair never get this far: the
        // request is refused at ParseRequest, the answer's event by the parser.)
        if (!Utf8.IsValid(payload))
        {
            exchange.NotStored = NotStoredReason.Invalid;
            Log.AnswerNotRecorded(logger, exchange.DialectId.Label(), "the answer is not valid Unicode text");
            return null;
        }

        if (!TurnCodec.TryRead(payload, out var view))
        {
            exchange.NotStored = NotStoredReason.Invalid;
            Log.AnswerNotRecorded(logger, exchange.DialectId.Label(), "the stored form of the turn did not read back");
            return null;
        }

        return new Turn(exchange.Session!, id, payload, view, model, timestamp, parser.Usage)
        {
            Previous = exchange.NewestPending,
            PreviousEnd = exchange.NextPosition,
        };
    }

    /// <summary>The request's <c>model</c> string, or null (absent, or too long to be a model name).</summary>
    private static string? Model(ReadOnlySpan<byte> body, Range range)
    {
        var token = body[range];
        if (token.Length < 2 || token.Length > 258)
        {
            return null;
        }

        var reader = new System.Text.Json.Utf8JsonReader(token);
        return reader.Read() ? reader.GetString() : null;
    }

    private static int EstimateTokens(int inputBytes, ResponseParser parser)
    {
        // Only until the writer counts the turn (a pending turn read by this replica meanwhile): three bytes a token,
        // more than JSON of English text takes, so a window holding it rather errs on the short side; the upstream's
        // count for the answer when it gave one.
        var output = parser.Usage.Output >= 0 ? parser.Usage.Output : (parser.OutputBytes + 2) / 3;
        return (int)Math.Min(int.MaxValue, ((inputBytes + 2) / 3) + output);
    }
}
