namespace Mnemo.Proxy.History;

/// <summary>
/// Everything the store holds for one session, as stored: the turn elements (oldest first, see <see cref="TurnCodec"/>),
/// the summary, the usage totals of every turn ever written to it and when it expires.
/// </summary>
internal sealed record SessionRecord(
    IReadOnlyList<ReadOnlyMemory<byte>> Elements,
    StoredSummary? Summary,
    SessionTotals Totals,
    TimeSpan? ExpiresIn);

/// <summary>
/// A session's usage as the append script (or the embedded store) added it up, turn by turn, in the write's own round
/// trip: the tokens the upstream reported (turns it reported nothing for add nothing), overall and per model.
/// </summary>
internal sealed class SessionTotals
{
    /// <summary>Turns written to the session since it began (trimmed ones included).</summary>
    public long Turns { get; set; }

    /// <summary>When the newest turn was answered (Unix ms), or 0 when unknown (a session written before this was kept).</summary>
    public long LastTurnMs { get; set; }

    public TokenTotals All { get; } = new();

    /// <summary>Per model name as the request gave it; turns without a model are only in <see cref="All"/>.</summary>
    public SortedDictionary<string, TokenTotals> ByModel { get; } = new(StringComparer.Ordinal);

    public void Add(string? model, TokenUsage usage)
    {
        All.Add(usage);
        if (!string.IsNullOrEmpty(model))
        {
            if (!ByModel.TryGetValue(model, out var totals))
            {
                ByModel[model] = totals = new TokenTotals();
            }

            totals.Add(usage);
        }
    }
}

/// <summary>Summed token counts: input (the whole prompt, cached parts included), output, and the cached parts.</summary>
internal sealed class TokenTotals
{
    public long Input { get; set; }

    public long Output { get; set; }

    public long CacheRead { get; set; }

    public long CacheWrite { get; set; }

    public void Add(TokenUsage usage)
    {
        Input += Math.Max(0, usage.Input);
        Output += Math.Max(0, usage.Output);
        CacheRead += Math.Max(0, usage.CacheRead);
        CacheWrite += Math.Max(0, usage.CacheWrite);
    }
}

/// <summary>One session in a tenant's listing.</summary>
internal readonly record struct SessionEntry(string Session, long StoredTurns, long WrittenTurns, long LastTurnMs);

/// <summary>A page of a tenant's sessions and the cursor of the next page (null on the last).</summary>
internal sealed record SessionPage(IReadOnlyList<SessionEntry> Sessions, string? NextCursor);

/// <summary>What an erasure did: sessions whose data was deleted.</summary>
internal readonly record struct EraseResult(long Sessions);
