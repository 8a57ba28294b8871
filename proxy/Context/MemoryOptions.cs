namespace Mnemo.Proxy.Context;

/// <summary>What Mnemo does with a session and how much of it goes back to the model (<c>Mnemo:Memory</c>).</summary>
/// <remarks>What the store keeps (<c>MaxStoredTurns</c>, <c>Ttl</c>) binds from the same section into <see cref="History.StoreOptions"/>.</remarks>
public sealed record MemoryOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Memory";

    /// <summary>Default mode for requests carrying a session header. A request may override it with <c>X-Mnemo-Mode</c>.</summary>
    public MemoryMode Mode { get; init; } = MemoryMode.Auto;

    /// <summary>At most this many of the newest turns are spliced into a request (never more than are stored).</summary>
    public int MaxContextTurns { get; init; } = 20;

    /// <summary>
    /// Token budget for everything spliced in, by the token counts stored with each turn when it was written
    /// (<c>Mnemo:Tokens</c>); 0 turns the budget off.
    /// </summary>
    public int MaxContextTokens { get; init; }

    /// <summary>
    /// With a token budget: when the window must shrink, old turns leave in a block, down to this fraction of the budget,
    /// so the injected history stays a byte-prefix of the next request's (prompt caches keep hitting) until the next block
    /// leaves. 1 slides the window one turn at a time. Above 0, at most 1.
    /// </summary>
    public double EvictionFraction { get; init; } = 0.5;

    /// <summary>
    /// Bytes of stored messages spliced into one request, newest turns first; older turns that do not fit are left out.
    /// Bounds what a request grows by upstream, whatever the turns hold. 0 turns the bound off.
    /// </summary>
    public long MaxContextBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>
    /// A turn (its new inputs and its answer, as stored) larger than this is forwarded and answered but not stored,
    /// and counted (<c>mnemo_turns_not_stored_total{reason="too_large"}</c>).
    /// </summary>
    public int MaxTurnBytes { get; init; } = 1024 * 1024;

    /// <summary>
    /// Anthropic only: put a <c>cache_control</c> breakpoint on the last injected message, so the provider caches the
    /// prompt through the history (never when the client's own breakpoints already use all four). Off by default: a
    /// cache write costs more than a plain input token, which pays only when the session's next request comes soon.
    /// </summary>
    public bool AnthropicCacheBreakpoint { get; init; }

    /// <summary>When a turn becomes visible to later reads. A request may override it with <c>X-Mnemo-Consistency</c>.</summary>
    public Consistency Consistency { get; init; } = Consistency.Replica;
}

/// <summary>When a turn is visible to the next request of its session.</summary>
public enum Consistency
{
    /// <summary>To this replica's next read before the client can see the end of the response; written to the store after it.</summary>
    Replica,

    /// <summary>
    /// To every replica: the end of the response is released only after the turn is written to the store (one write round
    /// trip at the end of the response, none before its first byte). A write that fails or times out leaves the turn
    /// to the retry queue, counted, and the response completes.
    /// </summary>
    Strict,
}

/// <summary>What Mnemo does for a request that carries a session header.</summary>
public enum MemoryMode
{
    /// <summary>The client sends only new messages; stored history is spliced in and the new turn stored.</summary>
    Inject,

    /// <summary>The client sends its full history; nothing is spliced, the new turn is stored.</summary>
    Record,

    /// <summary>
    /// The client may send only new messages or its full history: what it already sent of the stored history (compared
    /// by roles, text, images and tool calls, not bytes) is not spliced again, and only the messages the store does not
    /// hold are stored. A request without an answer in its messages is handled exactly as <see cref="Inject"/>.
    /// </summary>
    Auto,

    /// <summary>Plain proxying: nothing read, nothing stored.</summary>
    Off,
}

/// <summary>Parsing of <see cref="MemoryMode"/> and <see cref="Consistency"/> names in headers and route metadata.</summary>
internal static class MemoryModes
{
    public static bool TryParse(string? value, out Consistency consistency)
    {
        if (string.Equals(value, "replica", StringComparison.OrdinalIgnoreCase))
        {
            consistency = Consistency.Replica;
            return true;
        }

        if (string.Equals(value, "strict", StringComparison.OrdinalIgnoreCase))
        {
            consistency = Consistency.Strict;
            return true;
        }

        consistency = default;
        return false;
    }

    public static bool TryParse(string? value, out MemoryMode mode)
    {
        if (string.Equals(value, "inject", StringComparison.OrdinalIgnoreCase))
        {
            mode = MemoryMode.Inject;
            return true;
        }

        if (string.Equals(value, "record", StringComparison.OrdinalIgnoreCase))
        {
            mode = MemoryMode.Record;
            return true;
        }

        if (string.Equals(value, "auto", StringComparison.OrdinalIgnoreCase))
        {
            mode = MemoryMode.Auto;
            return true;
        }

        if (string.Equals(value, "off", StringComparison.OrdinalIgnoreCase))
        {
            mode = MemoryMode.Off;
            return true;
        }

        mode = default;
        return false;
    }
}
