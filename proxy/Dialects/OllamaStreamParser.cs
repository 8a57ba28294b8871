using System.Text.Json;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// Ollama's streamed chat answer (<c>application/x-ndjson</c>): one object per line, each with <c>message</c> fragments,
/// complete at the object with <c>"done": true</c>, which carries the token counts. A line <c>{"error":"…"}</c> ends a
/// failed stream (the status stays 200).
/// </summary>
internal sealed class OllamaStreamParser : NdjsonResponseParser
{
    private readonly OllamaAnswer _answer = new();

    public override int OutputBytes => _answer.Bytes;

    public override void WriteAnswer(Utf8JsonWriter writer) => _answer.Write(writer);

    protected override void OnObject(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            Fail("stream line is not a JSON object");
            return;
        }

        var line = OllamaLine.Read(ref reader, json, _answer);
        if (line.Error)
        {
            Fail("upstream sent an error line");
        }
        else if (line.NotAnAnswer)
        {
            Fail("upstream loaded or unloaded the model without answering");
        }
        else if (line.Done)
        {
            Usage = line.Usage;
            Finish();
        }
    }

    protected override void Release() => _answer.Dispose();

    protected override void Dispose(bool disposing)
    {
        _answer.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>What one Ollama chat response object (a stream line, or the whole non-streamed answer) says besides its message.</summary>
internal readonly record struct OllamaLine(bool Done, bool Error, bool NotAnAnswer, TokenUsage Usage)
{
    /// <summary>Reads the object the reader is on (its start), its <c>message</c> into <paramref name="answer"/>.</summary>
    public static OllamaLine Read(ref Utf8JsonReader reader, ReadOnlySpan<byte> json, OllamaAnswer answer)
    {
        bool done = false, error = false, notAnAnswer = false;
        long input = -1, output = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    answer.ReadMessage(ref reader, json);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("done"u8))
            {
                reader.Read();
                done = reader.TokenType == JsonTokenType.True;
            }
            else if (reader.ValueTextEquals("done_reason"u8))
            {
                // A request with no messages only loads (or, with keep_alive 0, unloads) the model: its "answer" is empty.
                reader.Read();
                notAnAnswer |= reader.TokenType == JsonTokenType.String && (reader.ValueTextEquals("load"u8) || reader.ValueTextEquals("unload"u8));
            }
            else if (reader.ValueTextEquals("prompt_eval_count"u8))
            {
                reader.Read();
                input = ResponseParser.Count(ref reader);
            }
            else if (reader.ValueTextEquals("eval_count"u8))
            {
                reader.Read();
                output = ResponseParser.Count(ref reader);
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                error = true;
                reader.Read();
                reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return new OllamaLine(done, error, notAnAnswer, new TokenUsage(input, output, -1, -1));
    }
}
