using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Dialects;

/// <summary>Helpers the dialects' readers and writers of the shared model have in common.</summary>
internal static class ChatText
{
    /// <summary>The text of a tool result or message content: a string, or the text parts of an array joined; other parts are dropped.</summary>
    public static string Of(JsonElement content, IDropSink drops)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                return content.GetString()!;
            case JsonValueKind.Array:
                var text = new StringBuilder();
                foreach (var part in content.EnumerateArray())
                {
                    if (part.ValueKind == JsonValueKind.String)
                    {
                        text.Append(part.GetString());
                    }
                    else if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text"u8, out var t) && t.ValueKind == JsonValueKind.String)
                    {
                        text.Append(t.GetString());
                    }
                    else
                    {
                        drops.Dropped(part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type"u8, out var type) && type.ValueEquals("image"u8) ? DropKind.Image : DropKind.Other);
                    }
                }

                return text.ToString();
            case JsonValueKind.Null or JsonValueKind.Undefined:
                return "";
            default:
                return content.GetRawText();
        }
    }

    /// <summary>The text parts of a message joined, or null when it has none.</summary>
    public static string? Join(ChatMessage message)
    {
        string? single = null;
        StringBuilder? joined = null;
        foreach (var part in message.Parts)
        {
            if (part is not TextPart text)
            {
                continue;
            }

            if (single is null)
            {
                single = text.Text;
            }
            else
            {
                (joined ??= new StringBuilder(single)).Append(text.Text);
            }
        }

        return joined?.ToString() ?? single;
    }

    /// <summary>The last message when it is the user's (tool results merge into it), else a new user message.</summary>
    public static ChatMessage UserMessage(List<ChatMessage> messages)
    {
        if (messages.Count > 0 && messages[^1].Role == ChatRole.User)
        {
            return messages[^1];
        }

        var message = new ChatMessage(ChatRole.User);
        messages.Add(message);
        return message;
    }
}
