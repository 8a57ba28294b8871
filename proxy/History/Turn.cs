using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.History;

/// <summary>One completed exchange (the new input messages and the answer) as stored: one list element, never split.</summary>
internal sealed class Turn
{
    public Turn(SessionKey session, string id, byte[] payload, StoredTurn view, DialectId dialect)
    {
        Session = session;
        Id = id;
        Payload = payload;
        View = view;
        Dialect = dialect;
    }

    public SessionKey Session { get; }

    /// <summary>32 lowercase hex characters; the dedupe key of the write script.</summary>
    public string Id { get; }

    /// <summary>The stored element: UTF-8 JSON, see <see cref="TurnCodec"/>.</summary>
    public byte[] Payload { get; }

    public StoredTurn View { get; }

    public DialectId Dialect { get; }
}

/// <summary>A stored element located but not decoded: its id, token estimate and the byte range of its messages.</summary>
internal readonly struct StoredTurn
{
    public StoredTurn(ReadOnlyMemory<byte> payload, Range id, Range messages, int tokens)
    {
        Payload = payload;
        IdRange = id;
        MessagesRange = messages;
        Tokens = tokens;
    }

    public ReadOnlyMemory<byte> Payload { get; }

    public Range IdRange { get; }

    /// <summary>The content between the brackets of the <c>messages</c> array: ready to splice.</summary>
    public Range MessagesRange { get; }

    public int Tokens { get; }

    public ReadOnlySpan<byte> Id => Payload.Span[IdRange];

    public ReadOnlyMemory<byte> Messages => Payload[MessagesRange];
}
