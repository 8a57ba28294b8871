using System.Buffers;
using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Tests.Dialects;

/// <summary>What every dialect's unit tests do with it: feed a response in chunks, read the answer, splice stored turns, convert.</summary>
internal static class DialectHarness
{
    /// <summary>A parser for <paramref name="mediaType"/> fed <paramref name="bytes"/> in chunks of <paramref name="chunk"/>, then ended.</summary>
    public static ResponseParser Parse(Dialect dialect, string mediaType, byte[] bytes, int chunk = 1 << 20)
    {
        var parser = dialect.CreateResponseParser(mediaType)!;
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            parser.Feed(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)));
        }

        parser.End();
        return parser;
    }

    /// <summary>The answer as the parser stores it: its item(s), comma-joined as inside the stored messages array.</summary>
    public static string Answer(ResponseParser parser) =>
        Json(writer =>
        {
            writer.WriteStartArray();
            parser.WriteAnswer(writer);
            writer.WriteEndArray();
        })[1..^1];

    /// <summary>Model messages written by <paramref name="dialect"/>, as a JSON array.</summary>
    public static string Write(Dialect dialect, IReadOnlyList<ChatMessage> messages, IDropSink drops) =>
        Json(writer =>
        {
            writer.WriteStartArray();
            dialect.WriteMessages(writer, messages, drops);
            writer.WriteEndArray();
        });

    /// <summary>A stored array read by <paramref name="dialect"/> into the model.</summary>
    public static List<ChatMessage> Read(Dialect dialect, string array, IDropSink drops)
    {
        var messages = new List<ChatMessage>();
        dialect.ReadMessages(Encoding.UTF8.GetBytes(array), messages, drops);
        return messages;
    }

    /// <summary><paramref name="body"/> with <paramref name="storedTurns"/> (each the comma-joined elements of one turn of the same dialect) spliced in.</summary>
    public static string Splice(Dialect dialect, string body, string[] storedTurns)
    {
        var turns = storedTurns.Select(t =>
        {
            var payload = TurnCodec.Encode(TurnCodec.NewId(), 0, dialect.Id, 10, TokenUsage.Unknown, t, static (w, s) =>
            {
                foreach (var message in JsonDocument.Parse("[" + s + "]").RootElement.EnumerateArray())
                {
                    w.WriteRawValue(message.GetRawText());
                }
            });
            Assert.That(TurnCodec.TryRead(payload, out var view), Is.True);
            return view;
        }).ToArray();

        var bytes = Encoding.UTF8.GetBytes(body);
        var plan = new SplicePlan();
        Assert.That(dialect.ParseRequest(bytes, fullHistory: false, plan), Is.EqualTo(ParseResult.Splice));
        var window = ContextWindow.Choose(turns, [], 20, 0);
        var segments = window.Segments(dialect, null!, out var count, out _);
        var used = segments.AsSpan(0, count);
        var destination = new byte[Mnemo.Proxy.Dialects.Splice.Length(bytes.Length, plan, used)];
        var written = Mnemo.Proxy.Dialects.Splice.Write(bytes, plan, used, destination);
        window.Return(segments);
        Assert.That(written, Is.EqualTo(destination.Length));
        return Encoding.UTF8.GetString(destination);
    }

    public static string Compact(string json) => JsonSerializer.Serialize(JsonDocument.Parse(json).RootElement);

    private static string Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
