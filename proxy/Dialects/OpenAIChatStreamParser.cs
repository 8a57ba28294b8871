using System.Text.Json;

namespace Mnemo.Proxy.Dialects;

/// <summary>Chat Completions SSE: <c>data: {chunk}</c> events, then <c>data: [DONE]</c>.</summary>
internal sealed class OpenAIChatStreamParser : SseResponseParser
{
    private readonly OpenAIChatAnswer _answer = new();

    public override int OutputBytes => _answer.Bytes;

    protected override void OnSseEvent(ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data)
    {
        if (Failure is not null)
        {
            return;
        }

        if (data.SequenceEqual("[DONE]"u8))
        {
            Finish();
            return;
        }

        var reader = new Utf8JsonReader(data);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            Fail("stream event is not a JSON object");
            return;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                {
                    Choice(ref reader, data);
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    Usage = OpenAIUsage.Read(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                Fail("upstream sent an error event");
                return;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    public override void WriteAnswer(Utf8JsonWriter writer) => _answer.Write(writer);

    protected override void Release() => _answer.Dispose();

    protected override void Dispose(bool disposing)
    {
        _answer.Dispose();
        base.Dispose(disposing);
    }

    private void Choice(ref Utf8JsonReader reader, ReadOnlySpan<byte> data)
    {
        // Only the first choice is remembered. "index" may follow "delta", so the delta is located first and read after.
        long index = 0;
        int deltaStart = -1, deltaEnd = -1;
        var finished = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                _ = reader.TryGetInt64(out index);
            }
            else if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    deltaStart = (int)reader.TokenStartIndex;
                    reader.Skip();
                    deltaEnd = (int)reader.BytesConsumed;
                }
            }
            else if (reader.ValueTextEquals("finish_reason"u8))
            {
                reader.Read();
                finished = reader.TokenType == JsonTokenType.String;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (index != 0)
        {
            return;
        }

        if (deltaStart >= 0)
        {
            Delta(data[deltaStart..deltaEnd]);
        }

        if (finished)
        {
            Completed = true;
        }
    }

    private void Delta(ReadOnlySpan<byte> delta)
    {
        var reader = new Utf8JsonReader(delta);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (_answer.TryReadText(ref reader))
            {
                continue;
            }

            if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                {
                    ToolCall(ref reader);
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private void ToolCall(ref Utf8JsonReader reader)
    {
        // A copy of the reader is a checkpoint: scout ahead for "index" wherever it sits in the object.
        var scout = reader;
        long index = 0;
        while (scout.Read() && scout.TokenType == JsonTokenType.PropertyName)
        {
            var isIndex = scout.ValueTextEquals("index"u8);
            scout.Read();
            if (isIndex)
            {
                _ = scout.TryGetInt64(out index);
                break;
            }

            scout.Skip();
        }

        var call = _answer.ToolCall((int)index);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    call.SetId(ref reader);
                }
            }
            else if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    call.SetType(ref reader);
                }
            }
            else if (reader.ValueTextEquals("function"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isName = reader.ValueTextEquals("name"u8);
                    var isArguments = !isName && reader.ValueTextEquals("arguments"u8);
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String && isName)
                    {
                        call.SetName(ref reader);
                    }
                    else if (reader.TokenType == JsonTokenType.String && isArguments)
                    {
                        call.AppendArguments(ref reader);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }
}
