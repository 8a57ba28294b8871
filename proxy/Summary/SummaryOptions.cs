namespace Mnemo.Proxy.Summary;

/// <summary>The rolling summary of the turns that left the context window (<c>Mnemo:Summary</c>).</summary>
/// <remarks>
/// Off by default. When on, a background call to the upstream folds the turns that left the window into the previous
/// summary; the summary is injected before the history in each API's instruction slot, and no turn is trimmed from the
/// store before the summary covers it (up to <see cref="HardMaxStoredTurns"/>).
/// </remarks>
public sealed record SummaryOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Summary";

    /// <summary>The default instruction of the summarizer call.</summary>
    public const string DefaultPrompt =
        "You maintain the running summary of a conversation between a user and an assistant. You get the previous summary "
        + "(it may be empty) and the turns that followed it. Write the new summary: keep every fact, name, number, decision, "
        + "preference, open question and tool result that later turns may need; drop pleasantries; write in the conversation's "
        + "language, in plain prose or short bullet points, without any preamble.";

    public bool Enabled { get; init; }

    /// <summary>The model the summarizer call asks for; required when <see cref="Enabled"/>.</summary>
    public string Model { get; init; } = "";

    /// <summary>
    /// The API format of the summarizer call (<c>openai-chat</c>, <c>anthropic-messages</c>, <c>openai-responses</c>,
    /// <c>ollama-chat</c>); empty = the dialect of the request that triggered it.
    /// </summary>
    public string Dialect { get; init; } = "";

    /// <summary>The path of the summarizer call on the upstream; empty = the path of the request that triggered it (when <see cref="Dialect"/> is empty) or the dialect's usual path.</summary>
    public string Path { get; init; } = "";

    /// <summary>The base URL of the summarizer call; empty = <c>Mnemo:Upstream</c>.</summary>
    public string Upstream { get; init; } = "";

    /// <summary>The instruction given to the summarizer.</summary>
    public string Prompt { get; init; } = DefaultPrompt;

    /// <summary>A summary runs once at least this many turns not yet summarised are outside the window; 0 = only <see cref="TriggerTokens"/>.</summary>
    public int TriggerTurns { get; init; } = 4;

    /// <summary>
    /// A summary also runs once the turns not yet summarised outside the window hold at least this many tokens (by their
    /// stored counts); 0 = off. Checked in the background, once at least one turn is outside the window.
    /// </summary>
    public int TriggerTokens { get; init; }

    /// <summary>The answer limit of the summarizer call (<c>max_tokens</c> or the API's equivalent).</summary>
    public int MaxTokens { get; init; } = 1024;

    /// <summary>Whose credentials the summarizer call carries.</summary>
    public SummaryCredentials Credentials { get; init; } = SummaryCredentials.Request;

    /// <summary>The key for <see cref="SummaryCredentials.ApiKey"/>; from a Secret, never from a values file.</summary>
    public string ApiKey { get; init; } = "";

    /// <summary>Time allowed for one summarizer call; a slower one fails (counted) and the window serves as without a summary.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// With the summary on, turns not yet summarised are kept past <c>Mnemo:Memory:MaxStoredTurns</c>, up to this many
    /// turns a session: beyond it the oldest go even unsummarised (a summarizer that keeps failing must not grow a
    /// session without bound). At least <c>MaxStoredTurns</c>.
    /// </summary>
    public int HardMaxStoredTurns { get; init; } = 1000;

    /// <summary>Summaries waiting to run; beyond it a trigger is dropped (the next write triggers again).</summary>
    public int QueueCapacity { get; init; } = 256;

    /// <summary>Turns folded into one summarizer call at most (the oldest first; the rest wait for the next run).</summary>
    public int MaxTurnsPerCall { get; init; } = 50;
}

/// <summary>Whose credentials the summarizer call carries.</summary>
public enum SummaryCredentials
{
    /// <summary>
    /// The triggering request's own <c>Authorization</c>, <c>x-api-key</c> or <c>api-key</c> value, held in memory only until
    /// the call is made: never logged, never stored.
    /// </summary>
    Request,

    /// <summary><c>Mnemo:Summary:ApiKey</c>.</summary>
    ApiKey,
}
