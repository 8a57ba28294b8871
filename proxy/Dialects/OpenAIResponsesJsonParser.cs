using System.Text.Json;

namespace Mnemo.Proxy.Dialects;

/// <summary>A non-streaming Responses answer: one Response object, recorded only when its status is <c>completed</c>.</summary>
internal sealed class OpenAIResponsesJsonParser : JsonResponseParser
{
    private readonly OpenAIResponsesAnswer _answer = new();

    public override int OutputBytes => _answer.Bytes;

    public override void WriteAnswer(Utf8JsonWriter writer) => _answer.Write(writer);

    public override string[] AnswerItemIds => _answer.ItemIds;

    protected override void OnDocument(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        reader.Read();
        var failure = _answer.ReadResponse(ref reader, body, out var usage);
        Usage = usage;
        if (failure is not null)
        {
            Fail(failure);
            return;
        }

        Completed = true;
    }

    protected override void Release()
    {
        _answer.Dispose();
        base.Release();
    }
}
