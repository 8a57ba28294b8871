using System.Text.Json;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// Responses SSE: <c>response.*</c> events. The answer is taken whole from <c>response.completed</c>, which carries the
/// final Response object, so the deltas before it are only looked at for their type, never kept.
/// </summary>
internal sealed class OpenAIResponsesStreamParser : SseResponseParser
{
    private readonly OpenAIResponsesAnswer _answer = new();

    private enum EventKind
    {
        Other,
        Completed,
        Failed,
        Incomplete,
        Error,
    }

    public override int OutputBytes => _answer.Bytes;

    protected override void OnSseEvent(ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data)
    {
        if (Failure is not null || data.SequenceEqual("[DONE]"u8))
        {
            // Some gateways end the stream as Chat Completions does; it says nothing the events did not.
            return;
        }

        var reader = new Utf8JsonReader(data);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            Fail("stream event is not a JSON object");
            return;
        }

        switch (Kind(reader, eventType))
        {
            case EventKind.Completed:
                Complete(ref reader, data);
                break;
            case EventKind.Failed:
                Fail("upstream reported the response failed");
                break;
            case EventKind.Incomplete:
                Fail("upstream reported the response incomplete");
                break;
            case EventKind.Error:
                Fail("upstream sent an error event");
                break;
        }
    }

    public override void WriteAnswer(Utf8JsonWriter writer) => _answer.Write(writer);

    public override string[] AnswerItemIds => _answer.ItemIds;

    protected override void Release() => _answer.Dispose();

    protected override void Dispose(bool disposing)
    {
        _answer.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>The event's kind by its data's <c>type</c> (the API sends it first, so a delta costs one property), else by the SSE event name.</summary>
    private static EventKind Kind(Utf8JsonReader reader, ReadOnlySpan<byte> eventType)
    {
        // The reader is a copy: scouting ahead leaves the caller's on the object's start.
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isType = reader.ValueTextEquals("type"u8);
            reader.Read();
            if (isType && reader.TokenType == JsonTokenType.String)
            {
                return reader.ValueTextEquals("response.completed"u8) ? EventKind.Completed
                    : reader.ValueTextEquals("response.failed"u8) ? EventKind.Failed
                    : reader.ValueTextEquals("response.incomplete"u8) ? EventKind.Incomplete
                    : reader.ValueTextEquals("error"u8) ? EventKind.Error
                    : EventKind.Other;
            }

            reader.Skip();
        }

        return eventType.SequenceEqual("response.completed"u8) ? EventKind.Completed
            : eventType.SequenceEqual("response.failed"u8) ? EventKind.Failed
            : eventType.SequenceEqual("response.incomplete"u8) ? EventKind.Incomplete
            : eventType.SequenceEqual("error"u8) ? EventKind.Error
            : EventKind.Other;
    }

    private void Complete(ref Utf8JsonReader reader, ReadOnlySpan<byte> data)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isResponse = reader.ValueTextEquals("response"u8);
            reader.Read();
            if (!isResponse || reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }

            var failure = _answer.ReadResponse(ref reader, data, out var usage);
            Usage = usage;
            if (failure is not null)
            {
                Fail(failure);
                return;
            }

            Finish();
            return;
        }

        Fail("response.completed event has no response");
    }
}
