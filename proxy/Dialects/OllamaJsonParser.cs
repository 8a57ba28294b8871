using System.Text.Json;

namespace Mnemo.Proxy.Dialects;

/// <summary>A non-streamed Ollama chat answer (<c>"stream": false</c>): one object shaped like the stream's done line, with the whole <c>message</c>.</summary>
internal sealed class OllamaJsonParser : JsonResponseParser
{
    private readonly OllamaAnswer _answer = new();

    public override int OutputBytes => _answer.Bytes;

    public override void WriteAnswer(Utf8JsonWriter writer) => _answer.Write(writer);

    protected override void OnDocument(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        reader.Read();
        var answer = OllamaLine.Read(ref reader, body, _answer);
        if (answer.Error)
        {
            Fail("upstream returned an error object");
        }
        else if (answer.NotAnAnswer)
        {
            Fail("upstream loaded or unloaded the model without answering");
        }
        else if (!answer.Done)
        {
            Fail("response is not a finished answer");
        }
        else
        {
            Usage = answer.Usage;
            Completed = true;
        }
    }

    protected override void Release()
    {
        _answer.Dispose();
        base.Release();
    }
}
