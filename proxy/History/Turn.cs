using Mnemo.Proxy.Conversation;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.History;

/// <summary>One completed exchange (the new input messages and the answer) as stored: one list element, never split.</summary>
/// <remarks>
/// Made on the response path with a token estimate; the writer counts it once before its first write and replaces
/// <see cref="Payload"/> and <see cref="View"/> together (one reference, so a concurrent read of a pending turn sees
/// either the estimate or the count, never half of each).
/// </remarks>
internal sealed class Turn
{
    private volatile Element _element;

    public Turn(SessionKey session, string id, byte[] payload, StoredTurn view, string? model = null, long timestampMs = 0, TokenUsage usage = default)
    {
        Session = session;
        Id = id;
        _element = new Element(payload, view);
        Size = payload.Length;
        Model = model;
        TimestampMs = timestampMs;
        Usage = usage == default ? TokenUsage.Unknown : usage;
    }

    public SessionKey Session { get; }

    /// <summary>32 lowercase hex characters; the dedupe key of the write script.</summary>
    public string Id { get; }

    /// <summary>The stored element: UTF-8 JSON, see <see cref="TurnCodec"/>.</summary>
    public byte[] Payload => _element.Payload;

    public StoredTurn View => _element.View;

    /// <summary>The payload's length when it was made: what the queue holds it to (the count changes it by a few bytes).</summary>
    public int Size { get; }

    /// <summary>The request's <c>model</c>; its encoding counts the turn.</summary>
    public string? Model { get; }

    /// <summary>
    /// The newest turn of the session this one follows, when it was not yet written at capture (its position is known
    /// once the writer has counted it, which it does first: a session's turns are written in order). Cleared when counted.
    /// </summary>
    public Turn? Previous { get; set; }

    /// <summary>Where the newest stored turn this one follows ended (its position plus its tokens); -1 unknown.</summary>
    public long PreviousEnd { get; set; } = -1;

    /// <summary>
    /// When the answer was captured (Unix ms, this replica's clock; the element's <c>ts</c>): an erasure refuses the
    /// turns answered before it (see <see cref="RedisScripts.Append"/>).
    /// </summary>
    public long TimestampMs { get; }

    /// <summary>The upstream's usage for this answer (also in the element); the write adds it to the session's totals.</summary>
    public TokenUsage Usage { get; }

    /// <summary>The session's generation after this turn was written (see <see cref="RedisScripts.Append"/>); 0 until then.</summary>
    public long Generation { get; set; }

    /// <summary>The session's list length right after this turn was pushed (before a trim); 1: it was the only turn. 0 until written.</summary>
    public long PushedLength { get; set; }

    /// <summary>Set when an administrator erases the session: the writer lets the turn go instead of writing it.</summary>
    public bool Erased { get => _erased; set => _erased = value; }

    private volatile bool _erased;

    /// <summary>Where the turn is in its hand-off to the writer (see <c>WriteBack.WriteBackQueue</c>, which alone changes it).</summary>
    public HandOff HandOff { get => (HandOff)Volatile.Read(ref _handOff); set => Volatile.Write(ref _handOff, (int)value); }

    private int _handOff;

    public bool IsCounted => View.Position >= 0;

    public DialectId Dialect => View.Dialect;

    /// <summary>The counted form replaces the estimate.</summary>
    public void Counted(byte[] payload, StoredTurn view) => _element = new Element(payload, view);

    private sealed record Element(byte[] Payload, StoredTurn View);
}

/// <summary>A captured turn's hand-off from its request to the writer.</summary>
internal enum HandOff
{
    /// <summary>Its answer has ended (reads see it) but its request has not completed.</summary>
    Held,

    /// <summary>Its request completed: it is to be written once every earlier held turn of its session is decided.</summary>
    Ready,

    /// <summary>Handed to the writer.</summary>
    Queued,
}

/// <summary>A stored element located but not decoded: its id, dialect, token estimate and the byte range of its messages.</summary>
internal readonly struct StoredTurn
{
    public StoredTurn(
        ReadOnlyMemory<byte> payload, Range id, Range messages, int tokens, DialectId dialect, bool continuesToolExchange, long position = -1, TurnShape? shape = null)
    {
        Shape = shape;
        Position = position;
        Payload = payload;
        IdRange = id;
        MessagesRange = messages;
        Tokens = tokens;
        Dialect = dialect;
        ContinuesToolExchange = continuesToolExchange;
        IdKey = KeyOf(payload.Span[id]);
    }

    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>
    /// The id's last eight bytes (the random end of a version-7 GUID) as a number, kept beside the other fields: turns
    /// are compared by it first, so a search of a window does not touch each turn's payload (a cache miss apiece).
    /// </summary>
    public ulong IdKey { get; }

    public Range IdRange { get; }

    /// <summary>The content between the brackets of the <c>messages</c> array, in <see cref="Dialect"/>'s request format: ready to splice.</summary>
    public Range MessagesRange { get; }

    /// <summary>The turn's tokens: counted by the writer when <see cref="Position"/> is known, else a bytes-based estimate.</summary>
    public int Tokens { get; }

    /// <summary>
    /// Tokens of the session's turns before this one (a running total kept by the writer; -1 for a turn not yet counted,
    /// or stored before counts existed). The window snaps its start to blocks of it, see <see cref="Context.ContextWindow"/>.
    /// </summary>
    public long Position { get; }

    /// <summary>The API format the messages are written in.</summary>
    public DialectId Dialect { get; }

    /// <summary>
    /// The turn's first message is a tool result whose call is in the turn before: a window must not begin with it.
    /// Decided when the turn was captured (<see cref="Dialects.Dialect.ContinuesToolExchange"/>).
    /// </summary>
    public bool ContinuesToolExchange { get; }

    /// <summary>
    /// The turn's tool calls, results and item ids, as the pairing rules need them (see <see cref="TurnShape"/>); null for
    /// an element written before shapes were stored: it is worked out from its messages when needed.
    /// </summary>
    public TurnShape? Shape { get; }

    public ReadOnlySpan<byte> Id => Payload.Span[IdRange];

    /// <summary>The same turn: the same id.</summary>
    public bool SameId(in StoredTurn other) => IdKey == other.IdKey && Id.SequenceEqual(other.Id);

    private static ulong KeyOf(ReadOnlySpan<byte> id)
    {
        if (id.Length >= sizeof(ulong))
        {
            return System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(id[^sizeof(ulong)..]);
        }

        ulong key = 0;
        foreach (var b in id)
        {
            key = (key << 8) | b;
        }

        return key;
    }

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
