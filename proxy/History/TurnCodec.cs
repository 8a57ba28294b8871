using System.Text.Json;
using Mnemo.Proxy.Buffers;
using Mnemo.Proxy.Conversation;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.History;

/// <summary>
/// The stored form of a turn, one Redis list element:
/// <c>{"id":"…","d":"dialect","x":1,"t":{…},"p":position,"tok":count,"ml":length,"messages":[…],"ts":unix-ms,"m":"model","usage":{"input":…,"output":…,"cache_read":…,"cache_write":…}}</c>.
/// Messages are kept in the dialect's own request format so they splice back into that dialect without conversion;
/// the usage is normalised (<see cref="TokenUsage"/>), with -1 where the upstream reported nothing. <c>tok</c> is the
/// writer's count of the messages' bytes (see <see cref="Tokens.TokenCounter"/>) once <c>p</c>, the session's running token
/// position, is present; without <c>p</c> it is the estimate the turn was captured with.
/// </summary>
/// <remarks>
/// The read path locates twenty of these per request, so what it needs comes first: the id, the dialect, <c>x</c> (only
/// when the turn continues a tool exchange, see <see cref="StoredTurn.ContinuesToolExchange"/>), the token estimate and
/// <c>ml</c>, the byte length of the messages array, which is then taken by offset instead of being tokenized.
/// <c>t</c> is the turn's <see cref="TurnShape"/>, <c>{}</c> for a turn without tool calls, results or item ids:
/// <c>{"a":[answered call ids],"o":[open call id, its tool's name, …],"c":[call ids],"i":[item ids],"r":[answer item ids],"v":0}</c>
/// (each only when not empty; <c>v</c> only when the turn is not valid on its own). Elements written before it have no
/// <c>t</c>: their shape is worked out when they are read.
/// </remarks>
internal static class TurnCodec
{
    private static readonly JsonWriterOptions s_writerOptions = new() { SkipValidation = true };

    // Encode runs synchronously on the request's thread and never re-enters, so one writer and two buffers per thread
    // serve every turn.
    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    [ThreadStatic]
    private static PooledBuffer? t_messages;

    [ThreadStatic]
    private static PooledBuffer? t_element;

    // Random bytes for ids, drawn from the system's secure generator a block at a time: Guid.CreateVersion7 reads it on
    // every call, a system call per turn on Linux.
    [ThreadStatic]
    private static byte[]? t_random;

    [ThreadStatic]
    private static int t_randomUsed;

    /// <summary>
    /// A new turn id: a version-7 UUID (48 bits of Unix milliseconds, then 74 random bits) as 32 lowercase hex digits,
    /// the form of <c>Guid.CreateVersion7().ToString("N")</c>, so ids sort by the time they were made.
    /// </summary>
    public static string NewId() => NewId(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

    internal static string NewId(long unixMs)
    {
        const int Block = 320;
        var random = t_random ??= new byte[Block];
        if (t_randomUsed == 0 || t_randomUsed > Block - 10)
        {
            System.Security.Cryptography.RandomNumberGenerator.Fill(random);
            t_randomUsed = 0;
        }

        var r = random.AsSpan(t_randomUsed, 10);
        // Used bytes are never handed out again.
        t_randomUsed += 10;
        Span<byte> id = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(id, unixMs << 16);
        id[6] = (byte)(0x70 | (r[0] & 0x0F));
        id[7] = r[1];
        id[8] = (byte)(0x80 | (r[2] & 0x3F));
        r[3..].CopyTo(id[9..]);
        return Convert.ToHexStringLower(id);
    }

    /// <summary>Works out the shape of a turn from its messages (the elements of its array, without brackets).</summary>
    public delegate TurnShape ShapeOf<in TState>(ReadOnlySpan<byte> elements, TState state);

    /// <summary>
    /// Writes a turn element; <paramref name="writeMessages"/> writes the elements of the messages array.
    /// <paramref name="continuesToolExchange"/>: its first message is a tool result answering the turn before.
    /// <paramref name="shape"/> works out the turn's <see cref="TurnShape"/> from the messages written (none: not stored).
    /// </summary>
    public static byte[] Encode<TState>(
        string id,
        long timestampMs,
        DialectId dialect,
        int tokens,
        TokenUsage usage,
        TState state,
        Action<Utf8JsonWriter, TState> writeMessages,
        bool continuesToolExchange = false,
        string? model = null,
        ShapeOf<TState>? shape = null)
    {
        var messages = t_messages ??= new PooledBuffer(4096);
        var element = t_element ??= new PooledBuffer(4096);
        messages.Clear();
        element.Clear();
        var writer = t_writer ??= new Utf8JsonWriter(messages, s_writerOptions);
        try
        {
            writer.Reset(messages);
            writer.WriteStartArray();
            writeMessages(writer, state);
            writer.WriteEndArray();
            writer.Flush();
            var turnShape = shape?.Invoke(messages.Span[1..^1], state);

            writer.Reset(element);
            writer.WriteStartObject();
            writer.WriteString("id"u8, id);
            writer.WriteString("d"u8, dialect.Utf8Label());
            if (continuesToolExchange)
            {
                // Absent, not 0, on most turns: elements written before the flag existed read the same way.
                writer.WriteNumber("x"u8, 1);
            }

            if (turnShape is not null)
            {
                WriteShape(writer, turnShape);
            }

            writer.WriteNumber("tok"u8, tokens);
            writer.WriteNumber("ml"u8, messages.Length);
            writer.WritePropertyName("messages"u8);
            writer.WriteRawValue(messages.Span, skipInputValidation: true);
            writer.WriteNumber("ts"u8, timestampMs);
            if (model is not null)
            {
                // After the messages: no read needs it (the writer counts from the Turn), only an export does.
                writer.WriteString("m"u8, model);
            }

            if (usage.IsKnown)
            {
                writer.WriteStartObject("usage"u8);
                writer.WriteNumber("input"u8, usage.Input);
                writer.WriteNumber("output"u8, usage.Output);
                writer.WriteNumber("cache_read"u8, usage.CacheRead);
                writer.WriteNumber("cache_write"u8, usage.CacheWrite);
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
            writer.Flush();
            return element.ToArray();
        }
        finally
        {
            writer.Reset(Stream.Null);
            ShrinkIfLarge(messages);
            ShrinkIfLarge(element);
        }
    }

    private static void WriteShape(Utf8JsonWriter writer, TurnShape shape)
    {
        writer.WriteStartObject("t"u8);
        Strings(writer, "a"u8, shape.Answers);
        if (shape.Open.Length > 0)
        {
            writer.WriteStartArray("o"u8);
            foreach (var call in shape.Open)
            {
                writer.WriteStringValue(call.Id);
                writer.WriteStringValue(call.Name);
            }

            writer.WriteEndArray();
        }

        Strings(writer, "c"u8, shape.Calls);
        Strings(writer, "i"u8, shape.Items);
        Strings(writer, "r"u8, shape.AnswerItems);
        if (!shape.Valid)
        {
            writer.WriteNumber("v"u8, 0);
        }

        writer.WriteEndObject();

        static void Strings(Utf8JsonWriter writer, ReadOnlySpan<byte> name, string[] values)
        {
            if (values.Length == 0)
            {
                return;
            }

            writer.WriteStartArray(name);
            foreach (var value in values)
            {
                writer.WriteStringValue(value);
            }

            writer.WriteEndArray();
        }
    }

    /// <summary>Reads a <c>t</c> object (the reader on its start, left on its end); null when it is not one this version wrote.</summary>
    private static TurnShape? ReadShape(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return null;
        }

        string[] answers = [], calls = [], items = [], answerItems = [];
        ToolCallRef[] open = [];
        var valid = true;
        var any = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            any = true;
            var name = reader.ValueSpan.Length == 1 ? reader.ValueSpan[0] : (byte)0;
            reader.Read();
            switch (name)
            {
                case (byte)'a':
                    answers = Strings(ref reader);
                    break;
                case (byte)'o':
                    var flat = Strings(ref reader);
                    open = new ToolCallRef[flat.Length / 2];
                    for (var i = 0; i < open.Length; i++)
                    {
                        open[i] = new ToolCallRef(flat[2 * i], flat[(2 * i) + 1]);
                    }

                    break;
                case (byte)'c':
                    calls = Strings(ref reader);
                    break;
                case (byte)'i':
                    items = Strings(ref reader);
                    break;
                case (byte)'r':
                    answerItems = Strings(ref reader);
                    break;
                case (byte)'v':
                    valid = !(reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var v) && v == 0);
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        return any ? new TurnShape(answers, open, calls, items, answerItems, valid) : TurnShape.None;

        static string[] Strings(ref Utf8JsonReader reader)
        {
            if (reader.TokenType != JsonTokenType.StartArray)
            {
                reader.Skip();
                return [];
            }

            var values = new List<string>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                values.Add(reader.TokenType == JsonTokenType.String ? reader.GetString()! : "");
            }

            return [.. values];
        }
    }

    // A rare very long answer must not pin a large array to a thread for the life of the process.
    private static void ShrinkIfLarge(PooledBuffer buffer)
    {
        buffer.Clear();
        if (buffer.Capacity > 256 * 1024)
        {
            buffer.Dispose();
            if (ReferenceEquals(buffer, t_messages))
            {
                t_messages = null;
            }
            else
            {
                t_element = null;
            }
        }
    }

    /// <summary>
    /// The element with its estimate replaced by the writer's count: <c>"tok":estimate</c> becomes
    /// <c>"p":position,"tok":count</c>, every other byte unchanged (the messages keep their bytes, so a window that
    /// held the pending turn and one that reads the stored turn splice the same bytes).
    /// </summary>
    public static byte[] WithCount(ReadOnlySpan<byte> payload, int tokens, long position)
    {
        var reader = new Utf8JsonReader(payload);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.CurrentDepth == 1 && reader.ValueTextEquals("tok"u8))
            {
                var start = (int)reader.TokenStartIndex;
                reader.Read();
                var end = (int)reader.BytesConsumed;
                Span<byte> replacement = stackalloc byte[64];
                var written = 0;
                if (position >= 0)
                {
                    "\"p\":"u8.CopyTo(replacement);
                    written = 4;
                    System.Buffers.Text.Utf8Formatter.TryFormat(position, replacement[written..], out var n);
                    written += n;
                    replacement[written++] = (byte)',';
                }

                "\"tok\":"u8.CopyTo(replacement[written..]);
                written += 6;
                System.Buffers.Text.Utf8Formatter.TryFormat(tokens, replacement[written..], out var m);
                written += m;
                var result = new byte[payload.Length - (end - start) + written];
                payload[..start].CopyTo(result);
                replacement[..written].CopyTo(result.AsSpan(start));
                payload[end..].CopyTo(result.AsSpan(start + written));
                return result;
            }

            reader.Read();
            reader.Skip();
        }

        throw new InvalidOperationException("The element has no token count.");
    }

    /// <summary>Locates the parts of a stored element; false for an element this version cannot use.</summary>
    public static bool TryRead(ReadOnlyMemory<byte> payload, out StoredTurn turn)
    {
        turn = default;
        var span = payload.Span;
        var reader = new Utf8JsonReader(span);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            Range id = default, messages = default;
            bool hasId = false, hasMessages = false, hasDialect = false, continues = false;
            TurnShape? shape = null;
            var dialect = DialectId.Other;
            int tokens = 0, messagesLength = -1;
            long position = -1;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped)
                    {
                        return false;
                    }

                    var start = (int)reader.TokenStartIndex + 1;
                    id = new Range(start, start + reader.ValueSpan.Length);
                    hasId = true;
                }
                else if (reader.ValueTextEquals("d"u8))
                {
                    reader.Read();
                    hasDialect = reader.TokenType == JsonTokenType.String && DialectLabels.TryParse(reader.ValueSpan, out dialect);
                    if (!hasDialect)
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("x"u8))
                {
                    reader.Read();
                    continues = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var x) && x != 0;
                }
                else if (reader.ValueTextEquals("t"u8))
                {
                    reader.Read();
                    shape = ReadShape(ref reader);
                }
                else if (reader.ValueTextEquals("tok"u8))
                {
                    reader.Read();
                    _ = reader.TryGetInt32(out tokens);
                }
                else if (reader.ValueTextEquals("p"u8))
                {
                    reader.Read();
                    if (!reader.TryGetInt64(out position) || position < 0)
                    {
                        position = -1;
                    }
                }
                else if (reader.ValueTextEquals("ml"u8))
                {
                    reader.Read();
                    _ = reader.TryGetInt32(out messagesLength);
                }
                else if (reader.ValueTextEquals("messages"u8))
                {
                    var start = (int)reader.BytesConsumed;
                    while (start < span.Length && span[start] != (byte)'[')
                    {
                        start++;
                    }

                    var end = start + messagesLength;
                    if (hasId && hasDialect && messagesLength >= 2 && end <= span.Length && span[end - 1] == (byte)']')
                    {
                        // Taken by offset: the array is this writer's own output, sized when it was written.
                        // What follows it (timestamp, usage) is not needed to splice.
                        messages = new Range(start + 1, end - 1);
                        hasMessages = true;
                        break;
                    }

                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return false;
                    }

                    start = (int)reader.TokenStartIndex + 1;
                    reader.Skip();
                    messages = new Range(start, (int)reader.TokenStartIndex);
                    hasMessages = true;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            // Elements written before turns led with their dialect carry it after the messages; only one dialect had
            // memory then, and the full read above reaches it.
            if (!hasId || !hasMessages || !hasDialect)
            {
                return false;
            }

            turn = new StoredTurn(payload, id, messages, tokens, dialect, continues, position, shape);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
