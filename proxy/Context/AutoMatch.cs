using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Context;

/// <summary>What <see cref="AutoMatch"/> made of a request in <see cref="MemoryMode.Auto"/>.</summary>
internal enum AutoOutcome
{
    /// <summary>The request has no answer among its messages: only new messages, handled exactly as Inject.</summary>
    NewOnly,

    /// <summary>The client's messages begin with (or contain) the newest stored messages: only what is missing is injected.</summary>
    Matched,

    /// <summary>The client sent history the store does not hold: nothing is injected and only its new turn is stored.</summary>
    Diverged,
}

/// <summary>
/// <see cref="MemoryMode.Auto"/>: finds how much of the stored window the client already sent, so that a client that
/// resends its whole transcript gets nothing twice, and one that sends only new messages is handled as Inject.
/// </summary>
/// <remarks>
/// <para>
/// The comparison is semantic, through the shared <see cref="ChatMessage"/> model, never on bytes: SDKs re-serialise
/// what they received (a string content becomes an array of parts, arguments are re-encoded, whitespace changes), and a
/// stored turn may be in another dialect than the request. Both sides are flattened into atoms: the text of a message
/// (its text parts joined), each image, each tool call (name, arguments as JSON, id) and each tool result (content, call
/// id). Message boundaries, names, error flags and whatever a reader drops (reasoning, thinking) are not compared.
/// Tool ids are compared as a consistent renaming (a stored id always stands for the same client id), so a client that
/// re-generated ids still matches while a result paired with another call does not; an absent id (Ollama's) matches any.
/// </para>
/// <para>
/// The client's messages C (its non-system items, as the Inject parse found them) are aligned at their end with the
/// stored window's messages S: the largest m such that C's first m atoms end with S's last min(m, |S|) atoms, where the
/// match begins at a stored turn, at an item of C, and ends at an item of C. Then the stored turns before the match are
/// injected (none when the whole window matched) and the items of C after it are the new turn. No alignment while C has
/// an answer followed by more messages means the client's history was edited (or belongs to another conversation): its
/// transcript wins, nothing is injected and only the items after its last answer are stored (as Record would). Answers
/// only at the end of C (an Anthropic prefill) make a request of new messages.
/// </para>
/// </remarks>
internal static class AutoMatch
{
    /// <summary>
    /// Decides a request in Auto mode: how many of <paramref name="window"/>'s turns, oldest first, to inject, and
    /// narrows <paramref name="plan"/>'s inputs to the turn to store.
    /// </summary>
    public static AutoOutcome Apply(Dialect dialect, DialectRegistry dialects, ReadOnlySpan<byte> body, SplicePlan plan, ReadOnlySpan<StoredTurn> window, out int inject)
    {
        inject = window.Length;
        if (!plan.HasOutput)
        {
            return AutoOutcome.NewOnly;
        }

        var client = new List<Atom>();
        var itemStarts = new int[plan.Inputs.Count + 1];
        var lastOutputItem = -1;
        var firstOutputItem = -1;
        for (var i = 0; i < plan.Inputs.Count; i++)
        {
            itemStarts[i] = client.Count;
            var item = body[plan.Inputs[i]];
            bool isOutput;
            if (plan.References > 0 && dialect.ProviderReference(item) is { } reference)
            {
                // A reference to an item the provider stored is the client's copy of it: compared as the item Mnemo stored
                // under that id, or, when Mnemo stored none, as nothing (Mnemo left it out of its copy too).
                isOutput = true;
                if (Referenced(window, reference) is var (source, stored) && (dialects.Get(source) is not { } reader || !TryRead(reader, stored.Span, client, i, out _)))
                {
                    return AutoOutcome.NewOnly;
                }
            }
            else if (!TryRead(dialect, item, client, i, out isOutput))
            {
                // An item this version cannot read: nothing can be said about it, so the request is taken as Inject takes it.
                return AutoOutcome.NewOnly;
            }

            if (isOutput)
            {
                lastOutputItem = i;
                if (firstOutputItem < 0)
                {
                    firstOutputItem = i;
                }
            }
        }

        itemStarts[plan.Inputs.Count] = client.Count;
        var onlyTrailingOutputs = firstOutputItem >= 0 && AllOutputsFrom(client, firstOutputItem);

        if (window.Length > 0)
        {
            var stored = new List<Atom>();
            var turnStarts = new int[window.Length + 1];
            for (var t = 0; t < window.Length; t++)
            {
                turnStarts[t] = stored.Count;
                if (dialects.Get(window[t].Dialect) is not { } source
                    || !TryRead(source, window[t].Messages.Span, stored, t, out _))
                {
                    return AutoOutcome.NewOnly;
                }
            }

            turnStarts[window.Length] = stored.Count;
            if (Align(client, stored, itemStarts, turnStarts) is var (endItem, firstMatchedTurn) && endItem >= 0)
            {
                inject = firstMatchedTurn;
                KeepInputsFrom(plan, endItem);
                return AutoOutcome.Matched;
            }
        }

        if (onlyTrailingOutputs || lastOutputItem < 0)
        {
            return AutoOutcome.NewOnly;
        }

        inject = 0;
        KeepInputsFrom(plan, lastOutputItem + 1);
        return AutoOutcome.Diverged;
    }

    /// <summary>The stored item a client's reference names: an item of a window turn's answer stored under that provider id.</summary>
    private static (DialectId Dialect, ReadOnlyMemory<byte> Item)? Referenced(ReadOnlySpan<StoredTurn> window, string id)
    {
        for (var t = window.Length - 1; t >= 0; t--)
        {
            if (window[t].Shape is not { AnswerItems.Length: > 0 } shape || Array.IndexOf(shape.AnswerItems, id) is not (>= 0 and var j))
            {
                continue;
            }

            // The answer's items are the turn's last ones.
            var messages = window[t].Messages;
            var items = Pairing.Bracketed(messages.Span, 0, static (array, _) =>
            {
                var ranges = new List<Range>();
                var reader = new Utf8JsonReader(array);
                reader.Read();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    // Offsets in the run, without its opening bracket.
                    var start = (int)reader.TokenStartIndex - 1;
                    reader.Skip();
                    ranges.Add(new Range(start, (int)reader.BytesConsumed - 1));
                }

                return ranges;
            });

            var at = items.Count - shape.AnswerItems.Length + j;
            return at >= 0 && at < items.Count ? (window[t].Dialect, messages[items[at]]) : null;
        }

        return null;
    }

    /// <summary>
    /// Auto without a window to compare with (the store unavailable, or no context configured): whatever follows the
    /// client's last answer is its new turn, as in Record; a request without an answer is stored whole, as in Inject.
    /// </summary>
    public static void WithoutHistory(SplicePlan plan)
    {
        if (plan.HasOutput)
        {
            KeepInputsFrom(plan, plan.OutputEnd);
        }
    }

    /// <summary>
    /// The end of the longest alignment as (index of the first client item after it, index of the first stored turn in
    /// it); (-1, 0) when there is none.
    /// </summary>
    private static (int EndItem, int FirstTurn) Align(List<Atom> client, List<Atom> stored, int[] itemStarts, int[] turnStarts)
    {
        if (stored.Count == 0)
        {
            return (-1, 0);
        }

        // m runs over item ends, from the last: the longest match stores the least twice.
        for (var item = itemStarts.Length - 1; item >= 1; item--)
        {
            var m = itemStarts[item];
            if (m == 0)
            {
                continue;
            }

            var length = Math.Min(m, stored.Count);
            var storedStart = stored.Count - length;
            var turn = Array.IndexOf(turnStarts, storedStart);
            if (turn < 0 || turn == turnStarts.Length - 1)
            {
                continue;
            }

            // Begins at an item of the client's messages (always so when it begins at the first).
            if (Array.IndexOf(itemStarts, m - length) < 0)
            {
                continue;
            }

            if (Equal(client, m - length, stored, storedStart, length))
            {
                return (item, turn);
            }
        }

        return (-1, 0);
    }

    private static bool Equal(List<Atom> client, int clientStart, List<Atom> stored, int storedStart, int length)
    {
        Dictionary<string, string>? ids = null;
        for (var i = 0; i < length; i++)
        {
            var c = client[clientStart + i];
            var s = stored[storedStart + i];
            if (c.Role != s.Role || c.Kind != s.Kind || !string.Equals(c.Text, s.Text, StringComparison.Ordinal))
            {
                return false;
            }

            if (c.Kind == AtomKind.ToolCall && !JsonEqual(c.Arguments!, s.Arguments!))
            {
                return false;
            }

            if (c.Kind is AtomKind.ToolCall or AtomKind.ToolResult && c.Id is not null && s.Id is not null)
            {
                ids ??= new(StringComparer.Ordinal);
                if (ids.TryGetValue(s.Id, out var mapped))
                {
                    if (!string.Equals(mapped, c.Id, StringComparison.Ordinal))
                    {
                        return false;
                    }
                }
                else
                {
                    ids[s.Id] = c.Id;
                }
            }
        }

        return true;
    }

    private static bool JsonEqual(string a, string b)
    {
        if (string.Equals(a, b, StringComparison.Ordinal))
        {
            return true;
        }

        try
        {
            using var x = JsonDocument.Parse(a);
            using var y = JsonDocument.Parse(b);
            return JsonElement.DeepEquals(x.RootElement, y.RootElement);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static bool AllOutputsFrom(List<Atom> client, int firstOutputItem)
    {
        foreach (var atom in client)
        {
            if (atom.Item >= firstOutputItem && atom.Role != ChatRole.Assistant)
            {
                return false;
            }
        }

        return true;
    }

    private static void KeepInputsFrom(SplicePlan plan, int item)
    {
        if (item <= 0)
        {
            return;
        }

        var kept = plan.Inputs.Count > item ? plan.Inputs.GetRange(item, plan.Inputs.Count - item) : [];
        plan.ClearInputs();
        foreach (var range in kept)
        {
            plan.AddInput(range, range.GetOffsetAndLength(int.MaxValue).Length);
        }
    }

    /// <summary>Reads one client item or one stored turn's messages into atoms tagged with <paramref name="source"/>.</summary>
    private static bool TryRead(Dialect dialect, ReadOnlySpan<byte> elements, List<Atom> into, int source, out bool isOutput)
    {
        isOutput = false;
        try
        {
            foreach (var message in Pairing.Read(dialect, elements))
            {
                isOutput |= message.Role == ChatRole.Assistant;
                AddAtoms(message, into, source);
            }

            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            return false;
        }
    }

    private static void AddAtoms(ChatMessage message, List<Atom> into, int source)
    {
        StringBuilder? text = null;
        foreach (var part in message.Parts)
        {
            if (part is TextPart { Text: var t })
            {
                (text ??= new StringBuilder()).Append(t);
                continue;
            }

            Flush(ref text, message.Role, into, source);
            switch (part)
            {
                case ImagePart image:
                    into.Add(new Atom(message.Role, AtomKind.Image, image.AsUrl(), null, null, source));
                    break;
                case ToolCallPart call:
                    into.Add(new Atom(message.Role, AtomKind.ToolCall, call.Name, call.Arguments, call.Id, source));
                    break;
                case ToolResultPart result:
                    into.Add(new Atom(message.Role, AtomKind.ToolResult, result.Content, null, result.CallId, source));
                    break;
            }
        }

        Flush(ref text, message.Role, into, source);
    }

    /// <summary>Adjacent text parts are one atom, and empty text none: SDKs split and join content parts differently.</summary>
    private static void Flush(ref StringBuilder? text, ChatRole role, List<Atom> into, int source)
    {
        if (text is { Length: > 0 })
        {
            into.Add(new Atom(role, AtomKind.Text, text.ToString(), null, null, source));
        }

        text = null;
    }

    private enum AtomKind
    {
        Text,
        Image,
        ToolCall,
        ToolResult,
    }

    /// <summary>One comparable piece of a message; <see cref="Item"/> is the client item or stored turn it came from.</summary>
    private readonly record struct Atom(ChatRole Role, AtomKind Kind, string Text, string? Arguments, string? Id, int Item);
}
