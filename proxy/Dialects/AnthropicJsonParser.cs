using System.Text.Json;

namespace Mnemo.Proxy.Dialects;

/// <summary>A non-streaming Messages response (<c>"type":"message"</c>), read once it has fully passed.</summary>
internal sealed class AnthropicJsonParser : JsonResponseParser
{
    private readonly AnthropicAnswer _answer = new();

    public override int OutputBytes => _answer.Bytes;

    public override void WriteAnswer(Utf8JsonWriter writer) => _answer.Write(writer);

    protected override void OnDocument(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        reader.Read();

        var usage = new AnthropicUsage();
        int contentStart = -1, contentEnd = -1;
        var error = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                error |= reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("error"u8);
                reader.Skip();
            }
            else if (reader.ValueTextEquals("content"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    contentStart = (int)reader.TokenStartIndex;
                    reader.Skip();
                    contentEnd = (int)reader.BytesConsumed;
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                usage.Read(ref reader);
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                reader.Skip();
                error = true;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (error)
        {
            Fail("upstream returned an error object");
            return;
        }

        if (contentStart < 0)
        {
            Fail("response has no content array");
            return;
        }

        var content = body[contentStart..contentEnd];
        var blocks = new Utf8JsonReader(content);
        blocks.Read();
        long index = 0;
        while (blocks.Read() && blocks.TokenType != JsonTokenType.EndArray)
        {
            if (blocks.TokenType == JsonTokenType.StartObject)
            {
                var start = (int)blocks.TokenStartIndex;
                blocks.Skip();
                _answer.Add(index, content[start..(int)blocks.BytesConsumed]);
            }
            else
            {
                blocks.Skip();
            }

            index++;
        }

        Usage = usage.Value;
        Completed = true;
    }

    protected override void Release()
    {
        _answer.Dispose();
        base.Release();
    }
}
