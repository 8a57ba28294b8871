using System.Buffers;
using Mnemo.Proxy.Conversation;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// The pairing rules every API shares, stated once over the shared <see cref="ChatMessage"/> model: a tool call is
/// followed by its result before anything else, a result answers a call just before it, and no call id appears twice.
/// </summary>
/// <remarks>
/// <para>
/// This is the strictest form of the four APIs' rules, so a run that keeps it is valid in each: OpenAI Chat wants an
/// assistant message's tool calls answered by the tool messages right after it; Anthropic wants each <c>tool_use</c>
/// answered by a <c>tool_result</c> at the start of the next (combined) user turn; Responses wants each
/// <c>function_call</c> to have its <c>function_call_output</c> and no output without its call; Ollama's templates
/// expect what Chat does. What each API adds (Responses' unique item ids, no references to provider-held items) a
/// dialect states through <see cref="Dialect.ItemIds"/>.
/// </para>
/// <para>
/// A run that breaks them is mended, never forwarded broken: a call without its result is closed with a result saying
/// it has none (in the API's own error form: Anthropic's <c>is_error</c>), because the call happened and the model
/// should see that it got nothing; a result without its call and a reference to an item only the provider holds are
/// left out, because nothing the API accepts could pair them; an older call whose id a newer one uses again is renamed
/// with its results, so both exchanges stay.
/// </para>
/// </remarks>
internal static class Pairing
{
    /// <summary>The content of the result that closes a call nobody answered.</summary>
    public const string ClosingText = "No result: this tool call was not completed.";

    /// <summary>
    /// The shape of a run of <paramref name="dialect"/>'s messages (the elements of its array, without brackets), and
    /// the provider's ids of its answer's items when the dialect has them.
    /// </summary>
    public static TurnShape Shape(Dialect dialect, ReadOnlySpan<byte> elements, string[]? answerItems = null)
    {
        answerItems ??= [];
        if (!dialect.MayHaveTools(elements))
        {
            return NoTools(answerItems);
        }

        List<string> items;
        bool references;
        TurnShape shape;
        try
        {
            items = ItemIds(dialect, elements, out references);
            shape = Walk(Read(dialect, elements), mend: null);
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            // Messages its own reader cannot take are spliced back as they are, as they always were: nothing is known to check.
            return NoTools(answerItems);
        }

        if (!shape.HasTools && items.Count == 0 && !references)
        {
            return NoTools(answerItems);
        }

        var duplicateItem = items.Count > 1 && items.Count != new HashSet<string>(items, StringComparer.Ordinal).Count;
        return new TurnShape(shape.Answers, shape.Open, shape.Calls, [.. items], answerItems, shape.Valid && !references && !duplicateItem);

        static TurnShape NoTools(string[] answerItems) =>
            answerItems.Length > 0 ? new TurnShape([], [], [], [], answerItems, valid: true) : TurnShape.None;
    }

    /// <summary>
    /// Mends a run in place so that it keeps the rules: results at its start are kept only for the calls in
    /// <paramref name="answerable"/> (the open calls of the run before, each answered once, under the id it was written
    /// with); a call left unanswered before anything else follows is closed; a result without its call is left out. A
    /// call whose id appears again later in the run, in <paramref name="later"/> (a later run of the request), or in
    /// <paramref name="written"/> (the ids written so far) is renamed, with its results, to its id and
    /// <paramref name="suffix"/>: the newest call with an id keeps it (the client's own results answer that one). Calls
    /// left open at its end stay open, for the run after it. Adds the ids it writes to <paramref name="written"/>; what
    /// was mended is counted in <paramref name="fixes"/>.
    /// </summary>
    public static TurnShape Repair(
        List<ChatMessage> messages, List<ToolCallRef> answerable, ISet<string> later, HashSet<string> written, string suffix, Fixes fixes) =>
        Walk(messages, new Mend(fixes, answerable, later, written, suffix));

    /// <summary>The results that close <paramref name="calls"/>, as one user message (written in each API's form by its writer).</summary>
    public static ChatMessage Closing(IEnumerable<ToolCallRef> calls)
    {
        var message = new ChatMessage(ChatRole.User);
        foreach (var call in calls)
        {
            message.Add(Close(call.Written, call.Name));
        }

        return message;
    }

    /// <summary>
    /// Pairs the open calls of a run with the results the next run starts with: <paramref name="unanswered"/> gets the
    /// calls none answers, the return value the results that answer none (both empty when the boundary keeps the rules).
    /// </summary>
    public static List<string>? Match(ToolCallRef[] open, string[] answers, List<ToolCallRef> unanswered)
    {
        unanswered.Clear();
        unanswered.AddRange(open);
        List<string>? orphans = null;
        foreach (var answer in answers)
        {
            var at = IndexOf(unanswered, answer);
            if (at >= 0)
            {
                unanswered.RemoveAt(at);
            }
            else
            {
                (orphans ??= []).Add(answer);
            }
        }

        return orphans;
    }

    /// <summary>
    /// The call ids of the tool results a request's own items start with (its new items, as ranges of its body): what
    /// they answer of the history injected before them.
    /// </summary>
    public static string[] LeadingAnswers(Dialect dialect, ReadOnlySpan<byte> body, SplicePlan plan)
    {
        List<string>? answers = null;
        if (plan.InputIsText)
        {
            return [];
        }

        foreach (var range in plan.Inputs)
        {
            var item = body[range];
            if (!dialect.MayHaveTools(item))
            {
                break;
            }

            List<ChatMessage> messages;
            try
            {
                messages = Read(dialect, item);
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
            {
                break;
            }

            foreach (var message in messages)
            {
                foreach (var part in message.Parts)
                {
                    if (message.Role == ChatRole.Assistant || part is not ToolResultPart result)
                    {
                        return answers is null ? [] : [.. answers];
                    }

                    (answers ??= []).Add(result.CallId ?? "");
                }
            }
        }

        return answers is null ? [] : [.. answers];
    }

    /// <summary>Reads a run of <paramref name="dialect"/>'s messages (array elements without brackets) into the model.</summary>
    public static List<ChatMessage> Read(Dialect dialect, ReadOnlySpan<byte> elements) =>
        Bracketed(elements, dialect, static (array, dialect) =>
        {
            var messages = new List<ChatMessage>();
            dialect.ReadMessages(array, messages, NoDrops.Instance);
            return messages;
        });

    /// <summary>Whether a run refers to an item only the provider holds (a stored <c>item_reference</c>).</summary>
    public static bool HasReferences(Dialect dialect, ReadOnlySpan<byte> elements)
    {
        ItemIds(dialect, elements, out var references);
        return references;
    }

    private static List<string> ItemIds(Dialect dialect, ReadOnlySpan<byte> elements, out bool references)
    {
        (var ids, references) = Bracketed(elements, dialect, static (array, dialect) =>
        {
            var ids = new List<string>();
            dialect.ItemIds(array, ids, out var references);
            return (ids, references);
        });
        return ids;
    }

    /// <summary>Calls <paramref name="read"/> with a run's elements between brackets (a JSON array), in a rented array.</summary>
    public static T Bracketed<TState, T>(ReadOnlySpan<byte> elements, TState state, Func<ReadOnlySpan<byte>, TState, T> read)
    {
        var array = ArrayPool<byte>.Shared.Rent(elements.Length + 2);
        try
        {
            array[0] = (byte)'[';
            elements.CopyTo(array.AsSpan(1));
            array[elements.Length + 1] = (byte)']';
            return read(array.AsSpan(0, elements.Length + 2), state);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(array);
        }
    }

    /// <summary>One pass over a run: its shape, and with <paramref name="mend"/> the run mended in place (see <see cref="Repair"/>).</summary>
    private static TurnShape Walk(List<ChatMessage> messages, Mend? mend)
    {
        var answers = new List<string>();
        var open = new List<ToolCallRef>();
        var calls = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var remaining = mend is null ? null : Occurrences(messages);
        var leading = true;
        var valid = true;
        for (var m = 0; m < messages.Count; m++)
        {
            var message = messages[m];
            if (message.Role == ChatRole.Assistant)
            {
                if (open.Count > 0)
                {
                    // An assistant message before the last one's calls were answered.
                    valid = false;
                    if (mend is not null)
                    {
                        messages.Insert(m++, Closing(open));
                        mend.Fixes.Add(ContextFix.DanglingCall, open.Count);
                    }

                    open.Clear();
                }

                leading = false;
                for (var p = 0; p < message.Parts.Count; p++)
                {
                    if (message.Parts[p] is not ToolCallPart call)
                    {
                        continue;
                    }

                    var id = call.Id ?? "";
                    string? renamed = null;
                    if (id.Length > 0)
                    {
                        valid &= seen.Add(id);
                        calls.Add(id);
                        if (mend is not null)
                        {
                            var left = --remaining![id];
                            if (left > 0 || mend.Later.Contains(id) || mend.Written.Contains(id))
                            {
                                // Another call has this id: the newest keeps it, this one is written under a new one.
                                renamed = $"{id}_{mend.Suffix}{(left > 0 ? "_" + left.ToString(System.Globalization.CultureInfo.InvariantCulture) : "")}";
                                message.Parts[p] = call with { Id = renamed };
                                mend.Fixes.Add(ContextFix.DuplicateId);
                            }

                            mend.Written.Add(renamed ?? id);
                        }
                    }

                    open.Add(new ToolCallRef(id, call.Name, renamed));
                }

                continue;
            }

            for (var p = 0; p < message.Parts.Count; p++)
            {
                if (message.Parts[p] is ToolResultPart result)
                {
                    var id = result.CallId ?? "";
                    var candidates = leading ? mend?.Answerable : open;
                    var at = leading && mend is null ? 0 : IndexOf(candidates!, id);
                    if (at >= 0)
                    {
                        if (candidates is not null)
                        {
                            if (mend is not null && candidates[at].As is { } renamed)
                            {
                                message.Parts[p] = result with { CallId = renamed };
                            }

                            candidates.RemoveAt(at);
                        }

                        if (leading)
                        {
                            answers.Add(id);
                        }

                        continue;
                    }

                    // A result without its call.
                    valid = false;
                    if (mend is not null)
                    {
                        message.Parts.RemoveAt(p--);
                        mend.Fixes.Add(ContextFix.OrphanResult);
                    }

                    continue;
                }

                leading = false;
                if (open.Count > 0)
                {
                    // Something other than a result before the last calls were answered.
                    valid = false;
                    if (mend is not null)
                    {
                        foreach (var call in open)
                        {
                            message.Parts.Insert(p++, Close(call.Written, call.Name));
                        }

                        mend.Fixes.Add(ContextFix.DanglingCall, open.Count);
                    }

                    open.Clear();
                }
            }
        }

        if (mend is not null)
        {
            messages.RemoveAll(static m => m.Parts.Count == 0);
        }

        return new TurnShape([.. answers], [.. open], [.. calls], [], [], valid);
    }

    /// <summary>How many calls of the run have each id.</summary>
    private static Dictionary<string, int> Occurrences(List<ChatMessage> messages)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var message in messages)
        {
            foreach (var part in message.Parts)
            {
                if (part is ToolCallPart { Id: { Length: > 0 } id })
                {
                    counts[id] = counts.GetValueOrDefault(id) + 1;
                }
            }
        }

        return counts;
    }

    private static ToolResultPart Close(string id, string name) => new(id.Length > 0 ? id : null, name.Length > 0 ? name : null, ClosingText, IsError: true);

    /// <summary>The call a result with this id answers: the same id, or for an id-less result (or call) the first open one.</summary>
    private static int IndexOf(List<ToolCallRef> calls, string id)
    {
        if (id.Length == 0)
        {
            return calls.Count > 0 ? 0 : -1;
        }

        var idless = -1;
        for (var i = 0; i < calls.Count; i++)
        {
            if (string.Equals(calls[i].Id, id, StringComparison.Ordinal))
            {
                return i;
            }

            if (idless < 0 && calls[i].Id.Length == 0)
            {
                idless = i;
            }
        }

        return idless;
    }

    /// <summary>What a mend is given: see <see cref="Repair"/>.</summary>
    private sealed record Mend(Fixes Fixes, List<ToolCallRef> Answerable, ISet<string> Later, HashSet<string> Written, string Suffix);

    /// <summary>What the pairing step mended for one request, by reason (the <c>reason</c> label of <c>mnemo_context_fixes_total</c>).</summary>
    internal sealed class Fixes
    {
        private readonly int[] _counts = new int[(int)ContextFix.Unreadable + 1];

        public void Add(ContextFix reason, int count = 1) => _counts[(int)reason] += count;

        public void CountIn(MnemoMetrics metrics, DialectId dialect)
        {
            for (var reason = 0; reason < _counts.Length; reason++)
            {
                metrics.ContextFixed(dialect, (ContextFix)reason, _counts[reason]);
            }
        }
    }
}
