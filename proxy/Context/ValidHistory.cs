using System.Text.Json;
using Mnemo.Proxy.Buffers;
using Mnemo.Proxy.Conversation;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Context;

/// <summary>
/// The one place that keeps what Mnemo forwards a valid conversation for its API, whatever is stored: the injected
/// segments, together with the request's own first items, keep the pairing rules of <see cref="Pairing"/>.
/// </summary>
/// <remarks>
/// <para>
/// It works on the segments' shapes (<see cref="TurnShape"/>, stored with each turn or worked out with a conversion),
/// so a history that keeps the rules costs a few id comparisons and is spliced byte for byte. Where a boundary breaks
/// them, the fix is local and the same on every request, so the injected prefix stays byte-stable: calls a segment
/// leaves open that the next segment (or the request) does not answer get a closing segment of their own after it;
/// a segment that breaks the rules within, starts with results nothing before it called, or repeats a call or item id
/// is read and written again, mended (<see cref="Pairing.Repair"/>).
/// </para>
/// <para>
/// The request's own items are the client's: they are never changed. When they start with results, those answer the
/// injected part's open calls; whatever else they hold is forwarded as sent.
/// </para>
/// </remarks>
internal static class ValidHistory
{
    private static readonly JsonWriterOptions s_writerOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// The segments to splice, mended where they would break the rules: <paramref name="segments"/> itself when nothing
    /// needs to change, else a new array (the first <paramref name="count"/> are used). <paramref name="requestAnswers"/>
    /// are the call ids of the results the request's own items start with.
    /// </summary>
    public static ReadOnlyMemory<byte>[] Apply(
        Dialect target, ReadOnlyMemory<byte>[] segments, TurnShape[] shapes, ref int count, string[] requestAnswers, MnemoMetrics metrics)
    {
        if (shapes.Length == 0 || count == 0)
        {
            return segments;
        }

        // Where each call id last appears: an earlier call with the same id is renamed, the newest keeps it.
        Dictionary<string, int>? last = null;
        for (var i = 0; i < count; i++)
        {
            foreach (var id in shapes[i].Calls)
            {
                (last ??= new(StringComparer.Ordinal))[id] = i;
            }
        }

        List<ReadOnlyMemory<byte>>? mended = null;
        var fixes = new Pairing.Fixes();
        var written = new HashSet<string>(StringComparer.Ordinal);
        HashSet<string>? seenItems = null;
        var unanswered = new List<ToolCallRef>();
        var later = new HashSet<string>(StringComparer.Ordinal);
        ToolCallRef[] open = [];
        for (var i = 0; i < count; i++)
        {
            var shape = shapes[i];
            var bytes = segments[i];
            var orphans = Pairing.Match(open, shape.Answers, unanswered);
            if (unanswered.Count > 0)
            {
                (mended ??= Copy(segments, i)).Add(Closing(target, unanswered));
                fixes.Add(ContextFix.DanglingCall, unanswered.Count);
            }

            later.Clear();
            var duplicateCall = false;
            foreach (var id in shape.Calls)
            {
                if (last![id] > i)
                {
                    later.Add(id);
                }

                duplicateCall |= written.Contains(id);
            }

            var duplicateItem = Overlaps(seenItems, shape.Items);
            var renamedAnswered = shape.Answers.Length > 0 && Array.Exists(open, static c => c.As is not null);
            if (!shape.Valid || orphans is not null || later.Count > 0 || duplicateCall || duplicateItem || renamedAnswered)
            {
                mended ??= Copy(segments, i);
                var answerable = new List<ToolCallRef>(open);
                foreach (var call in unanswered)
                {
                    answerable.Remove(call);
                }

                if (duplicateItem)
                {
                    // Written again through the model, the run carries no item ids at all.
                    fixes.Add(ContextFix.DuplicateId);
                }

                (bytes, shape) = Repair(target, bytes, answerable, later, written, fixes);
            }
            else
            {
                written.UnionWith(shape.Calls);
                if (shape.Items.Length > 0)
                {
                    (seenItems ??= new(StringComparer.Ordinal)).UnionWith(shape.Items);
                }
            }

            if (!bytes.IsEmpty)
            {
                mended?.Add(bytes);
            }

            open = shape.Open;
        }

        if (open.Length > 0)
        {
            Pairing.Match(open, requestAnswers, unanswered);
            if (unanswered.Count > 0)
            {
                (mended ??= Copy(segments, count)).Add(Closing(target, unanswered));
                fixes.Add(ContextFix.DanglingCall, unanswered.Count);
            }
        }

        fixes.CountIn(metrics, target.Id);
        if (mended is null)
        {
            return segments;
        }

        count = mended.Count;
        return [.. mended];
    }

    private static List<ReadOnlyMemory<byte>> Copy(ReadOnlyMemory<byte>[] segments, int count)
    {
        var copy = new List<ReadOnlyMemory<byte>>(count + 2);
        for (var i = 0; i < count; i++)
        {
            copy.Add(segments[i]);
        }

        return copy;
    }

    private static bool Overlaps(HashSet<string>? seen, string[] ids)
    {
        if (seen is null)
        {
            return false;
        }

        foreach (var id in ids)
        {
            if (seen.Contains(id))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The results closing <paramref name="calls"/>, in the target's form.</summary>
    private static byte[] Closing(Dialect target, List<ToolCallRef> calls) => Write(target, [Pairing.Closing(calls)]);

    /// <summary>The segment read in the target's own dialect, mended, and written again; empty when it cannot be read.</summary>
    private static (ReadOnlyMemory<byte> Bytes, TurnShape Shape) Repair(
        Dialect target, ReadOnlyMemory<byte> bytes, List<ToolCallRef> answerable, HashSet<string> later, HashSet<string> written, Pairing.Fixes fixes)
    {
        List<ChatMessage> messages;
        try
        {
            if (Pairing.HasReferences(target, bytes.Span))
            {
                // The model has no item references: read into it, the run leaves them out.
                fixes.Add(ContextFix.ProviderReference);
            }

            messages = Pairing.Read(target, bytes.Span);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            // Its own dialect cannot read it (stored by an older version?): nothing of it can be checked, so it is left out.
            fixes.Add(ContextFix.Unreadable);
            return (ReadOnlyMemory<byte>.Empty, TurnShape.None);
        }

        // Renamed calls take a suffix that depends only on the run's own bytes: the same on every request.
        var suffix = Fnv1a(bytes.Span).ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
        var shape = Pairing.Repair(messages, answerable, later, written, suffix, fixes);
        return (Write(target, messages), shape);
    }

    /// <summary>32-bit FNV-1a: the same on every replica and every run (string hash codes are randomised per process).</summary>
    private static uint Fnv1a(ReadOnlySpan<byte> bytes)
    {
        var hash = 2166136261u;
        foreach (var b in bytes)
        {
            hash = (hash ^ b) * 16777619u;
        }

        return hash;
    }

    private static byte[] Write(Dialect target, List<ChatMessage> messages)
    {
        using var buffer = new PooledBuffer(512);
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            writer.WriteStartArray();
            target.WriteMessages(writer, messages, NoDrops.Instance);
            writer.WriteEndArray();
        }

        var span = buffer.Span;
        return span.Length <= 2 ? [] : span[1..^1].ToArray();
    }
}
