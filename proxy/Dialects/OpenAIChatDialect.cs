using System.Text.Json;
using Mnemo.Proxy.Context;

namespace Mnemo.Proxy.Dialects;

/// <summary>OpenAI Chat Completions (<c>/v1/chat/completions</c>), as served by OpenAI, vLLM, llama.cpp and most gateways.</summary>
internal sealed class OpenAIChatDialect : Dialect
{
    public override DialectId Id => DialectId.OpenAIChat;

    public override bool Matches(HttpRequest request) =>
        HttpMethods.IsPost(request.Method)
        && request.Path.Value is { } path
        && path.EndsWith("/chat/completions", StringComparison.Ordinal);

    public override string? ParseRequest(ReadOnlySpan<byte> body, MemoryMode mode, ChatRequest request) =>
        JsonMessages.Parse(body, "messages"u8, "'messages'", mode, request);

    public override Task WriteErrorAsync(HttpResponse response, int statusCode, string code, string message, CancellationToken cancellationToken)
    {
        // OpenAI's error shape: {"error":{"message","type","param","code"}}.
        response.StatusCode = statusCode;
        response.ContentType = "application/json";
        using var writer = new Utf8JsonWriter(response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteStartObject("error"u8);
        writer.WriteString("message"u8, message);
        writer.WriteString("type"u8, statusCode >= 500 ? "server_error" : "invalid_request_error");
        writer.WriteNull("param"u8);
        writer.WriteString("code"u8, code);
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.Flush();
        return response.BodyWriter.FlushAsync(cancellationToken).AsTask();
    }

    public override ResponseParser? CreateResponseParser(string? mediaType) => mediaType switch
    {
        "text/event-stream" => new OpenAIChatStreamParser(),
        "application/json" => new OpenAIChatJsonParser(),
        _ => null,
    };

    public override void WriteTurnMessages(Utf8JsonWriter writer, ReadOnlySpan<byte> body, ChatRequest request, ResponseParser response)
    {
        foreach (var input in request.Inputs)
        {
            writer.WriteRawValue(body[input], skipInputValidation: true);
        }

        response.WriteAnswer(writer);
    }
}
