namespace Mnemo.Proxy.Conversation;

/// <summary>
/// What the pairing rules need to know of a run of messages (a stored turn, a converted run of turns, the request's own
/// items), without reading them again: the results it starts with, the calls it leaves open, and the ids it holds.
/// Ids are the API's own; an id-less call or result (older Ollama) is <c>""</c>.
/// </summary>
/// <remarks>
/// Computed once per stored turn when it is captured and kept in its element (see <c>History.TurnCodec</c>), so the read
/// path checks a window's pairing by comparing a few ids, never by parsing its messages.
/// </remarks>
internal sealed class TurnShape
{
    /// <summary>A run without tool calls, tool results or item ids.</summary>
    public static readonly TurnShape None = new([], [], [], [], [], valid: true);

    public TurnShape(string[] answers, ToolCallRef[] open, string[] calls, string[] items, string[] answerItems, bool valid)
    {
        Answers = answers;
        Open = open;
        Calls = calls;
        Items = items;
        AnswerItems = answerItems;
        Valid = valid;
    }

    /// <summary>Call ids of the tool results the run starts with, before anything else: they answer the open calls of the run before it.</summary>
    public string[] Answers { get; }

    /// <summary>Calls of the run's last assistant message left without a result: the run after it must start with their results.</summary>
    public ToolCallRef[] Open { get; }

    /// <summary>Every call id in the run (id-less calls left out): a request carries each once.</summary>
    public string[] Calls { get; }

    /// <summary>Item ids the run's bytes carry (Responses' <c>id</c> of an item): a request carries each once.</summary>
    public string[] Items { get; }

    /// <summary>
    /// The provider's ids of the answer's items (Responses: <c>msg_…</c>, <c>fc_…</c>), the i-th for the i-th of the run's
    /// last <c>AnswerItems.Length</c> items; not in the stored bytes, which replay the items without them. A client that
    /// refers to one (<c>item_reference</c>) is sending its copy of that item.
    /// </summary>
    public string[] AnswerItems { get; }

    /// <summary>
    /// Within the run every result answers a call just before it, every call other than the open ones is answered
    /// before anything else follows, no call or item id appears twice, and nothing refers to an item only the provider holds.
    /// </summary>
    public bool Valid { get; }

    public bool IsNone => Answers.Length == 0 && Open.Length == 0 && Calls.Length == 0 && Items.Length == 0 && AnswerItems.Length == 0 && Valid;

    /// <summary>Whether the run has anything the pairing rules look at (its answer item ids aside).</summary>
    public bool HasTools => Answers.Length > 0 || Open.Length > 0 || Calls.Length > 0 || Items.Length > 0 || !Valid;
}

/// <summary>
/// A call left open: its id and the tool's name (a result in Ollama's form names the tool), and <see cref="As"/>, the id
/// it was renamed to in the forwarded request when another call had the same id (null: not renamed).
/// </summary>
internal readonly record struct ToolCallRef(string Id, string Name, string? As = null)
{
    /// <summary>The id the forwarded request carries.</summary>
    public string Written => As ?? Id;
}
