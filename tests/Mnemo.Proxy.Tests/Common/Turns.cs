using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>Builds stored turns the way the proxy encodes them.</summary>
internal static class Turns
{
    public static Turn Make(SessionKey session, string question, string answer = "ok", int tokens = 10, string? id = null)
    {
        id ??= TurnCodec.NewId();
        var payload = TurnCodec.Encode(id, 1_700_000_000_000, DialectId.OpenAIChat, tokens, TokenUsage.Unknown, (question, answer), static (w, s) =>
        {
            w.WriteStartObject();
            w.WriteString("role", "user");
            w.WriteString("content", s.question);
            w.WriteEndObject();
            w.WriteStartObject();
            w.WriteString("role", "assistant");
            w.WriteString("content", s.answer);
            w.WriteEndObject();
        });
        Assert.That(TurnCodec.TryRead(payload, out var view), Is.True);
        return new Turn(session, id, payload, view);
    }

    /// <summary>The user questions of a window, oldest first.</summary>
    public static string[] Questions(IEnumerable<StoredTurn> turns) =>
        turns.Select(t => JsonDocument.Parse("[" + Encoding.UTF8.GetString(t.Messages.Span) + "]").RootElement[0].GetProperty("content").GetString()!).ToArray();
}
