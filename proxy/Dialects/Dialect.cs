using System.Text.Unicode;
using System.Text.Json;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// One API format: where its history lives in a request, how its responses carry the answer, how it reports errors,
/// and how its stored messages read into and write from the shared <see cref="ChatMessage"/> model.
/// </summary>
internal abstract class Dialect
{
    public abstract DialectId Id { get; }

    /// <summary>The path suffix a POST must end with to be this dialect's when no route names one (so prefixes such as <c>/openai</c> work).</summary>
    public abstract string PathSuffix { get; }

    /// <summary>
    /// Finds where history goes in <paramref name="body"/> and which items are the new input, without building a DOM,
    /// filling <paramref name="plan"/>. When <paramref name="fullHistory"/> (record mode) the client sent its whole
    /// conversation and only what follows the last assistant item is new. An error message is safe to show the client:
    /// it never quotes the body.
    /// </summary>
    /// <remarks>
    /// The body must be Unicode text throughout: stored bytes are replayed to the upstream on every later request, and
    /// read back by every dialect. Invalid UTF-8, or a <c>\u</c> escape of half a surrogate pair (valid JSON grammar,
    /// but no character: readers throw on it), is refused here, before any dialect looks at it.
    /// </remarks>
    public ParseResult ParseRequest(ReadOnlySpan<byte> body, bool fullHistory, SplicePlan plan)
    {
        if (!Utf8.IsValid(body))
        {
            return ParseResult.Invalid("The request body is not valid UTF-8.");
        }

        if (JsonEscapes.HasLoneSurrogate(body))
        {
            return ParseResult.Invalid("The request body has a \\u escape of half a surrogate pair: JSON text must be valid Unicode.");
        }

        return ParseBody(body, fullHistory, plan);
    }

    /// <summary>The dialect's own part of <see cref="ParseRequest"/>, on a body that is valid Unicode text.</summary>
    protected abstract ParseResult ParseBody(ReadOnlySpan<byte> body, bool fullHistory, SplicePlan plan);

    /// <summary>
    /// Written before and after the rolling summary's text (JSON string content) to make it one message in this API's
    /// instruction form, spliced first in the history; used when the parse left <see cref="SplicePlan.InstructionsAsMessage"/> set.
    /// </summary>
    public virtual ReadOnlySpan<byte> SummaryMessageOpen => "{\"role\":\"system\",\"content\":\""u8;

    /// <inheritdoc cref="SummaryMessageOpen"/>
    public virtual ReadOnlySpan<byte> SummaryMessageClose => "\"}"u8;

    /// <summary>Writes an error in this API's own error format.</summary>
    public abstract Task WriteErrorAsync(HttpResponse response, int statusCode, string code, string message, CancellationToken cancellationToken);

    /// <summary>A parser for a successful response of this media type, or null when the response cannot be recorded.</summary>
    public abstract ResponseParser? CreateResponseParser(string? mediaType);

    /// <summary>Writes the stored form of one turn's messages (inputs, then the answer) as elements of a JSON array.</summary>
    public void WriteTurnMessages(Utf8JsonWriter writer, ReadOnlySpan<byte> body, SplicePlan plan, ResponseParser response)
    {
        foreach (var input in plan.Inputs)
        {
            WriteInput(writer, body[input], plan);
        }

        response.WriteAnswer(writer);
    }

    /// <summary>
    /// Whether a turn whose first new input item is <paramref name="firstInputItem"/> continues a tool exchange: the item
    /// is a tool result, whose call is in the turn before. A window never begins with such a turn (the provider rejects a
    /// result without its call).
    /// </summary>
    /// <remarks>Asked once per turn when it is captured and stored with it, so the read path never parses messages for it.</remarks>
    public abstract bool ContinuesToolExchange(ReadOnlySpan<byte> firstInputItem);

    /// <summary>
    /// Whether a run of this dialect's messages (array elements, without brackets) may hold a tool call, a tool result
    /// or an item id: false only when it cannot (the names the API gives them do not occur), so that most turns are
    /// never parsed for the pairing rules (see <see cref="Pairing"/>).
    /// </summary>
    public abstract bool MayHaveTools(ReadOnlySpan<byte> elements);

    /// <summary>
    /// Adds the ids the API gives the items of a run (a messages array, brackets included), and tells whether one of
    /// them refers to an item only the provider holds. None in an API without item ids.
    /// </summary>
    public virtual void ItemIds(ReadOnlySpan<byte> messagesArray, List<string> into, out bool references) => references = false;

    /// <summary>
    /// The id of the item a request item refers to, when it is a reference to an item only the provider holds
    /// (Responses' <c>item_reference</c>); null for any other item. A reference is forwarded as sent and never stored:
    /// one to an item Mnemo stored stands for the client's copy of that item (see <see cref="Context.AutoMatch"/>).
    /// </summary>
    public virtual string? ProviderReference(ReadOnlySpan<byte> item) => null;

    /// <summary>Reads stored messages of this dialect (the elements of a stored turn's array) into the shared model.</summary>
    /// <remarks>Off the same-dialect path: only a turn read by another dialect is converted. What the model cannot carry is reported to <paramref name="drops"/>.</remarks>
    public abstract void ReadMessages(ReadOnlySpan<byte> messagesArray, List<ChatMessage> into, IDropSink drops);

    /// <summary>Writes model messages as elements of this dialect's request array (no brackets); reports what it cannot carry.</summary>
    public abstract void WriteMessages(Utf8JsonWriter writer, IReadOnlyList<ChatMessage> messages, IDropSink drops);

    /// <summary>Writes one new input item as stored: as the client sent it, unless the dialect must clean it.</summary>
    protected virtual void WriteInput(Utf8JsonWriter writer, ReadOnlySpan<byte> item, SplicePlan plan) =>
        writer.WriteRawValue(item, skipInputValidation: true);

    /// <summary>
    /// Moves a reader on an object's start to the value of its top-level property <paramref name="name"/>; false, the
    /// reader on the object's end, when it has none.
    /// </summary>
    protected static bool MoveToProperty(ref Utf8JsonReader reader, ReadOnlySpan<byte> name)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var found = reader.ValueTextEquals(name);
            reader.Read();
            if (found)
            {
                return true;
            }

            reader.Skip();
        }

        return false;
    }

    /// <summary>Whether an item is an object whose top-level string property <paramref name="name"/> is <paramref name="value"/>.</summary>
    protected static bool PropertyIs(ReadOnlySpan<byte> item, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var reader = new Utf8JsonReader(item);
        try
        {
            return reader.Read() && reader.TokenType == JsonTokenType.StartObject
                && MoveToProperty(ref reader, name)
                && reader.TokenType == JsonTokenType.String && reader.ValueTextEquals(value);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    public bool Matches(HttpRequest request) =>
        HttpMethods.IsPost(request.Method)
        && request.Path.Value is { } path
        && path.EndsWith(PathSuffix, StringComparison.Ordinal);
}

/// <summary>What a dialect made of a request body.</summary>
internal enum ParseOutcome
{
    /// <summary>History can be spliced per the plan, and the answer recorded.</summary>
    Splice,

    /// <summary>Forward untouched and record nothing (e.g. the provider holds the conversation state itself).</summary>
    PassThrough,

    /// <summary>The body is not a request this dialect accepts: a 400 in its error format.</summary>
    Invalid,
}

/// <summary>The result of <see cref="Dialect.ParseRequest"/>.</summary>
internal readonly record struct ParseResult(ParseOutcome Outcome, string? Error)
{
    public static readonly ParseResult Splice = new(ParseOutcome.Splice, null);

    public static readonly ParseResult PassThrough = new(ParseOutcome.PassThrough, null);

    public static ParseResult Invalid(string error) => new(ParseOutcome.Invalid, error);
}

/// <summary>
/// Where history goes in a request body and which parts of it are the turn's new input: the body's range
/// <see cref="Start"/>..<see cref="End"/> is replaced by <see cref="Open"/>, the history's elements joined by commas, and
/// <see cref="Close"/>. An insertion has an empty range; a plain-string input is replaced by an array holding history and
/// the string as a message. With no history the body is forwarded as received.
/// </summary>
internal sealed class SplicePlan
{
    public static readonly byte[] Comma = ","u8.ToArray();

    public int Start { get; set; }

    public int End { get; set; }

    /// <summary>Written before the history (a comma after an existing element, or an opening bracket).</summary>
    public byte[] Open { get; set; } = [];

    /// <summary>Written after the history (a comma before an existing element, or the replaced input and a closing bracket).</summary>
    public byte[] Close { get; set; } = [];

    /// <summary>The request's <c>stream</c> value; null when absent (the dialect's default applies).</summary>
    public bool? Stream { get; set; }

    /// <summary>The items of this turn, as ranges of the original body.</summary>
    public List<Range> Inputs { get; } = new(4);

    /// <summary>
    /// How many items of the body refer to items the provider holds (see <see cref="Dialect.ProviderReference"/>): when
    /// any, the inputs are checked for them before the turn is stored. Kept when the inputs are narrowed.
    /// </summary>
    public int References { get; set; }

    /// <summary>
    /// The request continues a conversation the provider holds (Responses' <c>previous_response_id</c> or
    /// <c>conversation</c>): nothing is injected, and its new items and answer are stored.
    /// </summary>
    public bool ProviderHeld { get; set; }

    /// <summary>The single input is a bare JSON string standing for one user message (Responses' <c>"input": "…"</c>).</summary>
    public bool InputIsText { get; set; }

    public int InputBytes { get; set; }

    /// <summary>
    /// How many of <see cref="Inputs"/> lead up to and include the last item the model produced (an assistant message,
    /// a call); 0 when the client sent none, i.e. only new messages. Read by Auto mode.
    /// </summary>
    public int OutputEnd { get; set; }

    public bool HasOutput => OutputEnd > 0;

    /// <summary>The top-level <c>model</c> string token, quotes included; empty when the body has none.</summary>
    public Range Model { get; set; }

    /// <summary>
    /// The rolling summary goes in as a message, first in the history (the dialect's <see cref="Dialect.SummaryMessageOpen"/>
    /// form). When false, it goes into the body's range <see cref="InstructionsStart"/>..<see cref="InstructionsEnd"/>
    /// (replaced by <see cref="InstructionsOpen"/>, the text, <see cref="InstructionsClose"/>), or nowhere when that is -1
    /// (e.g. Anthropic's <c>system</c> holds a value of a type it does not take).
    /// </summary>
    public bool InstructionsAsMessage { get; set; } = true;

    public int InstructionsStart { get; set; } = -1;

    public int InstructionsEnd { get; set; } = -1;

    public byte[] InstructionsOpen { get; set; } = [];

    public byte[] InstructionsClose { get; set; } = [];

    /// <summary>The summary replaces the range <paramref name="start"/>..<paramref name="end"/> of the body, between <paramref name="open"/> and <paramref name="close"/>.</summary>
    public void InstructionsAt(int start, int end, byte[] open, byte[] close)
    {
        InstructionsAsMessage = false;
        InstructionsStart = start;
        InstructionsEnd = end;
        InstructionsOpen = open;
        InstructionsClose = close;
    }

    /// <summary>An insertion at <paramref name="at"/>, with commas as the neighbouring elements need.</summary>
    public void InsertAt(int at, bool commaBefore, bool commaAfter)
    {
        Start = End = at;
        Open = commaBefore ? Comma : [];
        Close = commaAfter ? Comma : [];
    }

    public void AddInput(Range range, int length)
    {
        Inputs.Add(range);
        InputBytes += length;
    }

    public void ClearInputs()
    {
        Inputs.Clear();
        InputBytes = 0;
        OutputEnd = 0;
    }

    /// <summary>Leaves out the inputs <paramref name="exclude"/> says are not part of the turn (their bytes stay in the body).</summary>
    public void RemoveInputs(Func<Range, bool> exclude)
    {
        for (var i = Inputs.Count - 1; i >= 0; i--)
        {
            if (exclude(Inputs[i]))
            {
                InputBytes -= Inputs[i].GetOffsetAndLength(int.MaxValue).Length;
                Inputs.RemoveAt(i);
                if (OutputEnd > i)
                {
                    OutputEnd--;
                }
            }
        }
    }

    public void Reset()
    {
        Start = End = 0;
        Open = Close = [];
        Stream = null;
        InputIsText = false;
        Model = default;
        InstructionsAsMessage = true;
        InstructionsStart = InstructionsEnd = -1;
        InstructionsOpen = InstructionsClose = [];
        ProviderHeld = false;
        References = 0;
        ClearInputs();
    }
}
