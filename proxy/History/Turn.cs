using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.History;

/// <summary>One completed exchange (the new input messages and the answer) as stored: one list element, never split.</summary>
internal sealed class Turn
{
    public Turn(SessionKey session, string id, byte[] payload, StoredTurn view)
    {
        Session = session;
        Id = id;
        Payload = payload;
        View = view;
    }

    public SessionKey Session { get; }

    /// <summary>32 lowercase hex characters; the dedupe key of the write script.</summary>
    public string Id { get; }

    /// <summary>The stored element: UTF-8 JSON, see <see cref="TurnCodec"/>.</summary>
    public byte[] Payload { get; }

    public StoredTurn View { get; }

    public DialectId Dialect => View.Dialect;
}

/// <summary>A stored element located but not decoded: its id, dialect, token estimate and the byte range of its messages.</summary>
internal readonly struct StoredTurn
{
    public StoredTurn(ReadOnlyMemory<byte> payload, Range id, Range messages, int tokens, DialectId dialect, bool continuesToolExchange)
    {
        Payload = payload;
        IdRange = id;
        MessagesRange = messages;
        Tokens = tokens;
        Dialect = dialect;
        ContinuesToolExchange = continuesToolExchange;
    }

    public ReadOnlyMemory<byte> Payload { get; }

    public Range IdRange { get; }

    /// <summary>The content between the brackets of the <c>messages</c> array, in <see cref="Dialect"/>'s request format: ready to splice.</summary>
    public Range MessagesRange { get; }

    public int Tokens { get; }

    /// <summary>The API format the messages are written in.</summary>
    public DialectId Dialect { get; }

    /// <summary>
    /// The turn's first message is a tool result whose call is in the turn before: a window must not begin with it.
    /// Decided when the turn was captured (<see cref="Dialects.Dialect.ContinuesToolExchange"/>).
    /// </summary>
    public bool ContinuesToolExchange { get; }

    public ReadOnlySpan<byte> Id => Payload.Span[IdRange];

    public ReadOnlyMemory<byte> Messages => Payload[MessagesRange];
}

/// <summary>
/// Token counts of one answer as the upstream reported them, normalised across APIs; -1 where it reported none.
/// <see cref="Input"/> is the whole prompt, cached parts included (OpenAI's <c>prompt_tokens</c>; Anthropic's
/// <c>input_tokens</c> plus its cache reads and writes); <see cref="CacheRead"/> and <see cref="CacheWrite"/> are parts of it.
/// </summary>
internal readonly record struct TokenUsage(long Input, long Output, long CacheRead, long CacheWrite)
{
    public static readonly TokenUsage Unknown = new(-1, -1, -1, -1);

    public bool IsKnown => Input >= 0 || Output >= 0;
}
