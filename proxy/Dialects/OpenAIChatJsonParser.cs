using System.Text.Json;

namespace Mnemo.Proxy.Dialects;

/// <summary>A non-streaming Chat Completions response: one JSON object, read once it has fully passed.</summary>
internal sealed class OpenAIChatJsonParser : JsonResponseParser
{
    private readonly OpenAIChatAnswer _answer = new();

    public override int OutputBytes => _answer.Bytes;

    public override void WriteAnswer(Utf8JsonWriter writer) => _answer.Write(writer);

    protected override void OnDocument(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        reader.Read();

        var gotMessage = false;
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

                var first = true;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (first && reader.TokenType == JsonTokenType.StartObject)
                    {
                        gotMessage = Choice(ref reader, body);
                    }
                    else
                    {
                        reader.Skip();
                    }

                    first = false;
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                Usage = OpenAIUsage.Read(ref reader);
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                Fail("upstream returned an error object");
                return;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        Completed = gotMessage;
        if (!gotMessage)
        {
            Fail("response has no choices[0].message");
        }
    }

    protected override void Release()
    {
        _answer.Dispose();
        base.Release();
    }

    private bool Choice(ref Utf8JsonReader reader, ReadOnlySpan<byte> body)
    {
        var gotMessage = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isMessage = reader.ValueTextEquals("message"u8);
            reader.Read();
            if (isMessage && reader.TokenType == JsonTokenType.StartObject)
            {
                Message(ref reader, body);
                gotMessage = true;
            }
            else
            {
                reader.Skip();
            }
        }

        return gotMessage;
    }

    private void Message(ref Utf8JsonReader reader, ReadOnlySpan<byte> body)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (_answer.TryReadText(ref reader))
            {
                continue;
            }

            if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    _answer.SetToolCalls(body[start..(int)reader.BytesConsumed]);
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
