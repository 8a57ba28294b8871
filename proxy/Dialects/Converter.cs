using System.ComponentModel;
using System.Text.Json;
using Microsoft.Extensions.Caching.Hybrid;
using Mnemo.Proxy.Buffers;
using Mnemo.Proxy.Conversation;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// Writes turns stored by other dialects in a target dialect's request format, through the shared <see cref="ChatMessage"/>
/// model: each source dialect reads its own messages, the target writes them. What the target cannot carry is left out
/// and counted in <c>mnemo_conversion_dropped_total</c>.
/// </summary>
/// <remarks>
/// A conversion is a pure function of the stored turns (immutable, named by their ids) and the target, so with a
/// <see cref="HybridCache"/> it is cached in its in-memory tier, keyed by those ids: never stale, bounded in size. A hit
/// costs about 2.7 µs against 49 µs for converting 20 turns (ConversionCacheBenchmarks), so a session that moved from
/// one API to another stops paying for the move on every request. What the conversion left out is recorded with it and
/// counted again on each hit.
/// </remarks>
internal sealed class Converter(DialectRegistry dialects, MnemoMetrics metrics, HybridCache? cache = null)
{
    private static readonly HybridCacheEntryOptions s_entry = new()
    {
        Expiration = TimeSpan.FromHours(1),
        LocalCacheExpiration = TimeSpan.FromHours(1),
        Flags = HybridCacheEntryFlags.DisableDistributedCache,
    };

    // Escapes only what JSON requires: the result goes to an API, not into HTML, and \u0027 for every apostrophe would
    // grow the request for nothing.
    private static readonly JsonWriterOptions s_writerOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Converts a run of consecutive stored turns (each its dialect and the content of its messages array) into the
    /// elements of <paramref name="target"/>'s array, comma-joined without brackets; empty when nothing is left.
    /// </summary>
    /// <remarks>The run is converted as a whole so that tool calls and results across its turns stay paired and adjacent messages of one role can merge.</remarks>
    public byte[] Convert(Dialect target, IReadOnlyList<ForeignTurn> turns) => Convert(target, turns, out _);

    /// <summary>
    /// Like <see cref="Convert(Dialect, IReadOnlyList{ForeignTurn})"/>, with the converted run's <paramref name="shape"/>
    /// in the target's ids (see <see cref="Pairing"/>), worked out once and cached with it.
    /// </summary>
    public byte[] Convert(Dialect target, IReadOnlyList<ForeignTurn> turns, out TurnShape shape)
    {
        if (cache is null)
        {
            var converted = Convert(target, turns, new Drops(metrics, target.Id, null));
            shape = Pairing.Shape(target, converted);
            return converted;
        }

        var key = Key(target, turns);
        var state = (Converter: this, Target: target, Turns: turns);
        var pending = cache.GetOrCreateAsync(
            key,
            state,
            static (state, _) =>
            {
                var recorded = new List<Dropped>();
                var bytes = state.Converter.Convert(state.Target, state.Turns, new Drops(state.Converter.Metrics, state.Target.Id, recorded));
                return ValueTask.FromResult(new Conversion(bytes, [.. recorded], Pairing.Shape(state.Target, bytes)));
            },
            s_entry);

        // The factory is synchronous: the value is ready at once, except while another request converts the same turns.
        var conversion = pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
        var missed = conversion.Counted.Set();
        metrics.ConversionCache(hit: !missed);
        if (!missed)
        {
            foreach (var dropped in conversion.Dropped)
            {
                metrics.ConversionDropped(dropped.From, target.Id, dropped.Kind);
            }
        }

        shape = conversion.Shape;
        return conversion.Bytes;
    }

    private MnemoMetrics Metrics => metrics;

    /// <summary>The target and the turns' ids: what the conversion is a function of.</summary>
    private static string Key(Dialect target, IReadOnlyList<ForeignTurn> turns)
    {
        var length = 4;
        foreach (var turn in turns)
        {
            length += turn.Id.Length + 1;
        }

        return string.Create(length, (target.Id, turns), static (chars, state) =>
        {
            chars[0] = 'c';
            chars[1] = ':';
            chars[2] = (char)('0' + (int)state.Id);
            var at = 3;
            foreach (var turn in state.turns)
            {
                chars[at++] = ':';
                foreach (var b in turn.Id.Span)
                {
                    chars[at++] = (char)b;
                }
            }

            chars[at] = ';';
        });
    }

    private byte[] Convert(Dialect target, IReadOnlyList<ForeignTurn> turns, Drops drops)
    {
        var messages = new List<ChatMessage>();
        foreach (var turn in turns)
        {
            drops.From = turn.Dialect;
            if (dialects.Get(turn.Dialect) is not { } source)
            {
                drops.Dropped(DropKind.Other);
                continue;
            }

            var first = messages.Count;
            try
            {
                Pairing.Bracketed(turn.Messages.Span, (source, messages, drops), static (array, state) =>
                {
                    state.source.ReadMessages(array, state.messages, state.drops);
                    return 0;
                });
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
            {
                // A stored turn this version cannot read is left out of the history, never a failed request.
                messages.RemoveRange(first, messages.Count - first);
                drops.Dropped(DropKind.Other);
                continue;
            }

            ToolIds.Name(messages, first, turn.Id.Span);
        }

        ToolIds.Pair(messages);
        using var buffer = new PooledBuffer(1024);
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            writer.WriteStartArray();
            drops.From = turns.Count > 0 ? turns[^1].Dialect : DialectId.Other;
            target.WriteMessages(writer, messages, drops);
            writer.WriteEndArray();
        }

        var span = buffer.Span;
        return span.Length <= 2 ? [] : span[1..^1].ToArray();
    }

    private sealed class Drops(MnemoMetrics metrics, DialectId to, List<Dropped>? recorded) : IDropSink
    {
        public DialectId From { get; set; }

        public void Dropped(DropKind kind)
        {
            metrics.ConversionDropped(From, to, kind);
            recorded?.Add(new Dropped(From, kind));
        }
    }

    private readonly record struct Dropped(DialectId From, DropKind Kind);

    /// <summary>
    /// A cached conversion: immutable, so the in-memory tier keeps the instance itself. <see cref="Counted"/> tells the
    /// request that created it (a miss, its drops already counted) from the ones that find it.
    /// </summary>
    [ImmutableObject(true)]
    private sealed class Conversion(byte[] bytes, Dropped[] dropped, TurnShape shape)
    {
        public byte[] Bytes { get; } = bytes;

        public TurnShape Shape { get; } = shape;

        public Dropped[] Dropped { get; } = dropped;

        public Once Counted { get; } = new();
    }

    /// <summary>True the first time only.</summary>
    private sealed class Once
    {
        private int _done;

        public bool Set() => Interlocked.Exchange(ref _done, 1) == 0;
    }
}

/// <summary>One stored turn to convert: its dialect, the content of its messages array, and its turn id.</summary>
internal readonly record struct ForeignTurn(DialectId Dialect, ReadOnlyMemory<byte> Messages, ReadOnlyMemory<byte> Id);

/// <summary>Gives every tool call an id and pairs results that came without one (Ollama's) with their calls, in order.</summary>
internal static class ToolIds
{
    /// <summary>
    /// Names the id-less calls of one turn's messages (from <paramref name="first"/> on) after the turn's own id, so that
    /// a generated id is unique in the session and the same on every request (the converted prefix stays byte-stable).
    /// </summary>
    public static void Name(List<ChatMessage> messages, int first, ReadOnlySpan<byte> turnId)
    {
        // The tail of a UUIDv7 is random; its head is the millisecond, shared by turns written together.
        var tag = System.Text.Encoding.ASCII.GetString(turnId.Length > 12 ? turnId[^12..] : turnId);
        var n = 0;
        for (var m = first; m < messages.Count; m++)
        {
            var parts = messages[m].Parts;
            for (var i = 0; i < parts.Count; i++)
            {
                if (parts[i] is ToolCallPart { Id: null } call)
                {
                    parts[i] = call with { Id = $"call_{tag}_{++n}" };
                }
            }
        }
    }

    public static void Pair(List<ChatMessage> messages)
    {
        var open = new List<ToolCallPart>();
        var generated = 0;
        foreach (var message in messages)
        {
            for (var i = 0; i < message.Parts.Count; i++)
            {
                switch (message.Parts[i])
                {
                    case ToolCallPart { Id: null } call:
                        var named = call with { Id = $"call_mnemo_{++generated}" };
                        message.Parts[i] = named;
                        open.Add(named);
                        break;
                    case ToolCallPart call:
                        open.Add(call);
                        break;
                    case ToolResultPart result:
                        var match = result.CallId is null
                            ? open.FindIndex(c => c.Name == result.Name) is var byName and >= 0 ? byName : (open.Count > 0 ? 0 : -1)
                            : open.FindIndex(c => c.Id == result.CallId);
                        if (match >= 0)
                        {
                            if (result.CallId is null)
                            {
                                message.Parts[i] = result with { CallId = open[match].Id, Name = result.Name ?? open[match].Name };
                            }
                            else if (result.Name is null)
                            {
                                message.Parts[i] = result with { Name = open[match].Name };
                            }

                            open.RemoveAt(match);
                        }

                        break;
                }
            }
        }
    }
}
