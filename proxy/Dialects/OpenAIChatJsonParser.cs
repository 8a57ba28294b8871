using System.Text.Json;
using Mnemo.Proxy.Context;

namespace Mnemo.Proxy.Dialects;

/// <summary>A non-streaming Chat Completions response: one JSON object, read once it has fully passed.</summary>
internal sealed class OpenAIChatJsonParser : ResponseParser
{
    private readonly OpenAIChatAnswer _answer = new();
    private PooledBuffer? _body = new(4096);

    public override int OutputBytes => _answer.Bytes;

    public override void WriteAnswer(Utf8JsonWriter writer) => _answer.Write(writer);

    protected override void OnData(ReadOnlySpan<byte> chunk)
    {
        if (_body!.Length + chunk.Length > JsonResponses.MaxRecordedBytes)
        {
            Fail("response is larger than the recording limit");
            return;
        }

        _body.Append(chunk);
    }

    protected override void OnEnd()
    {
        var body = _body!.Span;
        var reader = new Utf8JsonReader(body);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            Fail("response is not a JSON object");
            return;
        }

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
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    SetUsage(body[start..(int)reader.BytesConsumed], "prompt_tokens"u8, "completion_tokens"u8);
                }
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
        _body?.Dispose();
        _body = null;
        _answer.Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        Release();
        base.Dispose(disposing);
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

internal static class JsonResponses
{
    /// <summary>A non-streaming body larger than this is still proxied, but not recorded.</summary>
    public const int MaxRecordedBytes = 16 * 1024 * 1024;
}
