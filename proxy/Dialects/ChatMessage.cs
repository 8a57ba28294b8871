namespace Mnemo.Proxy.Dialects;

/// <summary>
/// The small model every dialect reads its stored messages into and writes from, so that a turn stored by one API
/// continues in another: one reader and one writer per dialect, never a converter per pair.
/// </summary>
/// <remarks>
/// Only what all four APIs can carry: text, images, tool calls and tool results. A tool result is a part of a
/// <see cref="ChatRole.User"/> message (Anthropic's shape); writers of APIs with a tool role split it out. System
/// messages are never stored, so there is no system role.
/// </remarks>
internal sealed class ChatMessage(ChatRole role)
{
    public ChatRole Role { get; } = role;

    public List<ChatPart> Parts { get; } = [];

    public ChatMessage Add(ChatPart part)
    {
        Parts.Add(part);
        return this;
    }
}

internal enum ChatRole
{
    User,
    Assistant,
}

/// <summary>One piece of a message's content.</summary>
internal abstract record ChatPart;

internal sealed record TextPart(string Text) : ChatPart;

/// <summary>An image: base64 <see cref="Data"/> with its <see cref="MediaType"/>, or a <see cref="Url"/>.</summary>
internal sealed record ImagePart(string? MediaType, string? Data, string? Url) : ChatPart
{
    /// <summary>The image as a <c>data:</c> URL, or its URL.</summary>
    public string AsUrl() => Data is not null ? $"data:{MediaType ?? "image/png"};base64,{Data}" : Url!;

    /// <summary>Reads a URL, decoding a base64 <c>data:</c> URL into media type and data.</summary>
    public static ImagePart FromUrl(string url)
    {
        const string prefix = "data:";
        const string marker = ";base64,";
        if (url.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && url.IndexOf(marker, StringComparison.OrdinalIgnoreCase) is var at and > 0)
        {
            return new ImagePart(url[prefix.Length..at], url[(at + marker.Length)..], null);
        }

        return new ImagePart(null, null, url);
    }
}

/// <summary>A call the assistant made. <see cref="Id"/> is null where the API has no call ids (older Ollama); <see cref="Arguments"/> is a JSON object's text.</summary>
internal sealed record ToolCallPart(string? Id, string Name, string Arguments) : ChatPart;

/// <summary>The result of a call, sent back by the client; <see cref="CallId"/> pairs it with its <see cref="ToolCallPart"/>.</summary>
internal sealed record ToolResultPart(string? CallId, string? Name, string Content, bool IsError) : ChatPart;

/// <summary>Receives what a conversion leaves out.</summary>
internal interface IDropSink
{
    void Dropped(Metrics.DropKind kind);
}

/// <summary>
/// For a read that converts nothing (to compare, to check pairing, to mend a run of the same API, to summarise): what a
/// reader leaves out is not a loss there, so it is not counted.
/// </summary>
internal sealed class NoDrops : IDropSink
{
    public static readonly NoDrops Instance = new();

    private NoDrops()
    {
    }

    public void Dropped(Metrics.DropKind kind)
    {
    }
}
