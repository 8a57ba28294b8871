using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Summary;

/// <summary>
/// The summarizer call's body in each API's format (the prompt as its instruction, the previous summary and the turns
/// to fold in as one user message of plain text), and the summary read back from its answer.
/// </summary>
/// <remarks>Off the request path: a background call, so <see cref="JsonDocument"/> and strings are fine here.</remarks>
internal static class SummaryCall
{
    private static readonly JsonWriterOptions s_writerOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The usual path of each API, for a summarizer call in another dialect than the request's.</summary>
    public static string DefaultPath(DialectId dialect) => dialect switch
    {
        DialectId.AnthropicMessages => "/v1/messages",
        DialectId.OpenAIResponses => "/v1/responses",
        DialectId.OllamaChat => "/api/chat",
        _ => "/v1/chat/completions",
    };

    /// <summary>The user message of the call: the previous summary, then the turns as a plain transcript.</summary>
    public static string Transcript(string? previous, ReadOnlySpan<StoredTurn> turns, DialectRegistry dialects)
    {
        var text = new StringBuilder();
        text.Append("Previous summary:\n").Append(string.IsNullOrEmpty(previous) ? "(none)" : previous).Append("\n\nTurns to fold in, oldest first:\n");
        var messages = new List<ChatMessage>();
        foreach (var turn in turns)
        {
            if (dialects.Get(turn.Dialect) is not { } source)
            {
                continue;
            }

            messages.Clear();
            try
            {
                messages.AddRange(Pairing.Read(source, turn.Messages.Span));
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
            {
                continue;
            }

            foreach (var message in messages)
            {
                text.Append(message.Role == ChatRole.User ? "User: " : "Assistant: ");
                foreach (var part in message.Parts)
                {
                    _ = part switch
                    {
                        TextPart t => text.Append(t.Text),
                        ToolCallPart call => text.Append("[called tool ").Append(call.Name).Append(" with ").Append(call.Arguments).Append(']'),
                        ToolResultPart result => text.Append("[tool result").Append(result.IsError ? " (error)" : "").Append(": ").Append(result.Content).Append(']'),
                        ImagePart => text.Append("[image]"),
                        _ => text,
                    };
                    text.Append(' ');
                }

                text.Append('\n');
            }
        }

        return text.ToString();
    }

    /// <summary>The request body of the call in <paramref name="dialect"/>'s format, never streamed.</summary>
    public static byte[] Body(DialectId dialect, string model, string prompt, string transcript, int maxTokens)
    {
        var buffer = new ArrayBufferWriter<byte>(transcript.Length + prompt.Length + 256);
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("model"u8, model);
            switch (dialect)
            {
                case DialectId.AnthropicMessages:
                    writer.WriteNumber("max_tokens"u8, maxTokens);
                    writer.WriteString("system"u8, prompt);
                    writer.WriteStartArray("messages"u8);
                    WriteMessage(writer, "user", transcript);
                    writer.WriteEndArray();
                    writer.WriteBoolean("stream"u8, false);
                    break;
                case DialectId.OpenAIResponses:
                    writer.WriteString("instructions"u8, prompt);
                    writer.WriteString("input"u8, transcript);
                    writer.WriteNumber("max_output_tokens"u8, maxTokens);
                    writer.WriteBoolean("store"u8, false);
                    writer.WriteBoolean("stream"u8, false);
                    break;
                case DialectId.OllamaChat:
                    writer.WriteStartArray("messages"u8);
                    WriteMessage(writer, "system", prompt);
                    WriteMessage(writer, "user", transcript);
                    writer.WriteEndArray();
                    writer.WriteBoolean("stream"u8, false);
                    writer.WriteStartObject("options"u8);
                    writer.WriteNumber("num_predict"u8, maxTokens);
                    writer.WriteEndObject();
                    break;
                default:
                    writer.WriteStartArray("messages"u8);
                    WriteMessage(writer, "system", prompt);
                    WriteMessage(writer, "user", transcript);
                    writer.WriteEndArray();
                    writer.WriteNumber("max_completion_tokens"u8, maxTokens);
                    writer.WriteBoolean("stream"u8, false);
                    break;
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// The answer's text, read with the dialect's own response parser (so every format and its failures are read the
    /// way a proxied answer is), or null when the answer is not a complete one with text.
    /// </summary>
    public static string? Answer(Dialect dialect, string? mediaType, ReadOnlySpan<byte> body)
    {
        using var parser = dialect.CreateResponseParser(mediaType);
        if (parser is null)
        {
            return null;
        }

        parser.Feed(body);
        parser.End();
        if (!parser.Completed || parser.Failure is not null)
        {
            return null;
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            parser.WriteAnswer(writer);
            writer.WriteEndArray();
        }

        var messages = new List<ChatMessage>();
        dialect.ReadMessages(buffer.WrittenSpan, messages, NoDrops.Instance);
        var text = new StringBuilder();
        foreach (var message in messages)
        {
            if (message.Role == ChatRole.Assistant && ChatText.Join(message) is { Length: > 0 } part)
            {
                text.Append(part);
            }
        }

        var summary = text.ToString().Trim();
        return summary.Length == 0 ? null : summary;
    }

    /// <summary>The summary as stored: the content of a JSON string, escaped, without quotes (spliced as is).</summary>
    public static byte[] Escape(string summary) =>
        JsonEncodedText.Encode(summary, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).EncodedUtf8Bytes.ToArray();

    /// <summary>The stored summary's text, unescaped (the previous summary given to the next call).</summary>
    public static string Unescape(ReadOnlySpan<byte> escaped)
    {
        var quoted = new byte[escaped.Length + 2];
        quoted[0] = quoted[^1] = (byte)'"';
        escaped.CopyTo(quoted.AsSpan(1));
        var reader = new Utf8JsonReader(quoted);
        reader.Read();
        return reader.GetString() ?? "";
    }

    /// <summary>A token estimate for the budget (four bytes a token, as for turns without a count).</summary>
    public static int EstimateTokens(int bytes) => (bytes + 3) / 4;

    private static void WriteMessage(Utf8JsonWriter writer, string role, string content)
    {
        writer.WriteStartObject();
        writer.WriteString("role"u8, role);
        writer.WriteString("content"u8, content);
        writer.WriteEndObject();
    }
}
