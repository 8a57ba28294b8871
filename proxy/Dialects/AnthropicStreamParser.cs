using System.Text.Json;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// Messages SSE: <c>message_start</c>, then per content block <c>content_block_start</c>, its deltas and
/// <c>content_block_stop</c>, then <c>message_delta</c> and <c>message_stop</c>; <c>ping</c> may come anywhere and an
/// <c>error</c> event ends the stream without an answer.
/// </summary>
internal sealed class AnthropicStreamParser : SseResponseParser
{
    private readonly AnthropicAnswer _answer = new();
    private AnthropicUsage _usage = new();

    private enum EventKind
    {
        Unknown,
        MessageStart,
        ContentBlockStart,
        ContentBlockDelta,
        ContentBlockStop,
        MessageDelta,
        MessageStop,
        Ping,
        Error,
    }

    private enum DeltaKind
    {
        None,
        Text,
        Thinking,
        Signature,
        InputJson,
    }

    public override int OutputBytes => _answer.Bytes;

    protected override void OnSseEvent(ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data)
    {
        if (Failure is not null)
        {
            return;
        }

        var reader = new Utf8JsonReader(data);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            Fail("stream event is not a JSON object");
            return;
        }

        // The data's "type" names the event (the event: line repeats it); properties may come in any order.
        var kind = EventKind.Unknown;
        long index = -1;
        int bodyStart = -1, bodyEnd = -1, usageStart = -1, usageEnd = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                kind = Classify(ref reader);
            }
            else if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                index = Count(ref reader);
            }
            else if (reader.ValueTextEquals("content_block"u8) || reader.ValueTextEquals("delta"u8) || reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                (bodyStart, bodyEnd) = Range(ref reader);
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                (usageStart, usageEnd) = Range(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (kind == EventKind.Unknown)
        {
            kind = Classify(eventType);
        }

        var body = bodyStart < 0 ? default : data[bodyStart..bodyEnd];
        switch (kind)
        {
            case EventKind.MessageStart when bodyStart >= 0:
                MessageStart(body);
                break;
            case EventKind.ContentBlockStart:
                if (bodyStart < 0 || index < 0)
                {
                    Fail("content_block_start without a block or an index");
                    return;
                }

                _answer.Add(index, body);
                break;
            case EventKind.ContentBlockDelta:
                if (bodyStart < 0 || _answer.Find(index) is not { } block)
                {
                    Fail("content_block_delta for a block that never started");
                    return;
                }

                Delta(block, body);
                break;
            case EventKind.MessageDelta when usageStart >= 0:
                var usage = new Utf8JsonReader(data[usageStart..usageEnd]);
                usage.Read();
                _usage.Read(ref usage);
                Usage = _usage.Value;
                break;
            case EventKind.MessageStop:
                Finish();
                break;
            case EventKind.Error:
                Fail("upstream sent an error event");
                break;
        }
    }

    public override void WriteAnswer(Utf8JsonWriter writer) => _answer.Write(writer);

    protected override void Release() => _answer.Dispose();

    protected override void Dispose(bool disposing)
    {
        _answer.Dispose();
        base.Dispose(disposing);
    }

    private void MessageStart(ReadOnlySpan<byte> message)
    {
        var reader = new Utf8JsonReader(message);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isUsage = reader.ValueTextEquals("usage"u8);
            reader.Read();
            if (isUsage)
            {
                _usage.Read(ref reader);
                Usage = _usage.Value;
            }
            else
            {
                reader.Skip();
            }
        }
    }

    private static void Delta(AnthropicBlock block, ReadOnlySpan<byte> delta)
    {
        // The delta's type says which property carries its fragment; "type" may follow it, so it is found first.
        var scout = new Utf8JsonReader(delta);
        scout.Read();
        var kind = DeltaKind.None;
        while (scout.Read() && scout.TokenType == JsonTokenType.PropertyName)
        {
            var isType = scout.ValueTextEquals("type"u8);
            scout.Read();
            if (isType && scout.TokenType == JsonTokenType.String)
            {
                kind = scout.ValueTextEquals("text_delta"u8) ? DeltaKind.Text
                    : scout.ValueTextEquals("thinking_delta"u8) ? DeltaKind.Thinking
                    : scout.ValueTextEquals("signature_delta"u8) ? DeltaKind.Signature
                    : scout.ValueTextEquals("input_json_delta"u8) ? DeltaKind.InputJson
                    : DeltaKind.None;
                break;
            }

            scout.Skip();
        }

        // citations_delta and kinds not known yet carry nothing an input block keeps.
        if (kind == DeltaKind.None)
        {
            return;
        }

        var property = kind switch
        {
            DeltaKind.Text => "text"u8,
            DeltaKind.Thinking => "thinking"u8,
            DeltaKind.Signature => "signature"u8,
            _ => "partial_json"u8,
        };
        var reader = new Utf8JsonReader(delta);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isValue = reader.ValueTextEquals(property);
            reader.Read();
            if (!isValue || reader.TokenType != JsonTokenType.String)
            {
                reader.Skip();
                continue;
            }

            switch (kind)
            {
                case DeltaKind.Signature:
                    block.AppendSignature(ref reader);
                    break;
                case DeltaKind.InputJson:
                    block.AppendInput(ref reader);
                    break;
                default:
                    block.AppendText(ref reader);
                    break;
            }
        }
    }

    private static (int Start, int End) Range(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return (-1, -1);
        }

        var start = (int)reader.TokenStartIndex;
        reader.Skip();
        return (start, (int)reader.BytesConsumed);
    }

    private static EventKind Classify(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.String ? Classify(reader.ValueIsEscaped ? default : reader.ValueSpan) : EventKind.Unknown;

    private static EventKind Classify(ReadOnlySpan<byte> name) =>
        name.SequenceEqual("content_block_delta"u8) ? EventKind.ContentBlockDelta
        : name.SequenceEqual("content_block_start"u8) ? EventKind.ContentBlockStart
        : name.SequenceEqual("content_block_stop"u8) ? EventKind.ContentBlockStop
        : name.SequenceEqual("message_start"u8) ? EventKind.MessageStart
        : name.SequenceEqual("message_delta"u8) ? EventKind.MessageDelta
        : name.SequenceEqual("message_stop"u8) ? EventKind.MessageStop
        : name.SequenceEqual("ping"u8) ? EventKind.Ping
        : name.SequenceEqual("error"u8) ? EventKind.Error
        : EventKind.Unknown;
}
