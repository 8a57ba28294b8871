using System.Text.Json;
using Mnemo.Proxy.Buffers;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// Reads a response as it streams past, keeping only what the stored turn needs.
/// Fed from the response tee, so it must never throw and never hold the bytes it was given.
/// </summary>
internal abstract class ResponseParser : IDisposable
{
    private bool _ended;

    /// <summary>The upstream said the answer is complete (an end marker or a finish reason).</summary>
    public bool Completed { get; protected set; }

    /// <summary>
    /// The upstream's last event has been read (the stream's end marker, or the end of the body): nothing that follows
    /// belongs to the answer, so the turn can be taken before these bytes reach the client.
    /// </summary>
    public bool Final { get; private set; }

    /// <summary>Why the answer cannot be recorded; a fixed phrase, never response content.</summary>
    public string? Failure { get; protected set; }

    /// <summary>The upstream's token counts, normalised; unknown parts are -1.</summary>
    public TokenUsage Usage { get; protected set; } = TokenUsage.Unknown;

    /// <summary>Bytes of answer text kept, for the token estimate when the upstream reports no usage.</summary>
    public abstract int OutputBytes { get; }

    /// <summary>Bytes of answer the parser may keep; past it the answer still streams on, but is not recorded.</summary>
    public int Limit { get; set; } = int.MaxValue;

    /// <summary>The answer went past <see cref="Limit"/>.</summary>
    public bool TooLarge { get; protected set; }

    public void Feed(ReadOnlySpan<byte> chunk)
    {
        if (Failure is not null)
        {
            return;
        }

        try
        {
            OnData(chunk);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Whatever a parser trips over, the answer still streams on: it is just not recorded.
            Fail(Reason(ex));
        }

        if (OutputBytes > Limit)
        {
            TooLarge = true;
            Fail("the answer is larger than Mnemo:Memory:MaxTurnBytes allows");
        }
    }

    /// <summary>The body has ended (or all of its announced length has passed); a second call does nothing.</summary>
    public void End()
    {
        if (_ended)
        {
            return;
        }

        _ended = true;
        Final = true;
        if (Failure is not null)
        {
            return;
        }

        try
        {
            OnEnd();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Whatever a parser trips over, the answer still streams on: it is just not recorded.
            Fail(Reason(ex));
        }
    }

    /// <summary>Writes the assistant message(s) of the answer in the dialect's request format.</summary>
    public abstract void WriteAnswer(Utf8JsonWriter writer);

    /// <summary>
    /// The provider's ids of the items <see cref="WriteAnswer"/> writes, in order, where the API lets a client refer to
    /// them (Responses' <c>item_reference</c>); empty elsewhere.
    /// </summary>
    public virtual string[] AnswerItemIds => [];

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected abstract void OnData(ReadOnlySpan<byte> chunk);

    protected virtual void OnEnd()
    {
    }

    protected virtual void Dispose(bool disposing)
    {
    }

    private static string Reason(Exception ex) => ex switch
    {
        JsonException => "response is not valid JSON",
        InvalidOperationException => "response JSON has an unexpected shape",
        _ => "response could not be read",
    };

    /// <summary>The stream's end marker: the answer is complete and nothing after it matters.</summary>
    protected void Finish()
    {
        Completed = true;
        Final = true;
    }

    protected void Fail(string reason)
    {
        Failure ??= reason;
        Release();
    }

    /// <summary>
    /// An event, line or document with an escape of half a surrogate pair is valid JSON grammar but no text: readers throw
    /// on it, and stored it would be refused at the door of every later request. The answer still streams on; it is not
    /// recorded. (Invalid UTF-8 is caught on the stored turn, where it is one pass over what is kept.)
    /// </summary>
    protected bool Unreadable(ReadOnlySpan<byte> json)
    {
        if (!JsonEscapes.HasLoneSurrogate(json))
        {
            return false;
        }

        Fail("response is not valid Unicode text");
        return true;
    }

    /// <summary>Frees buffers early once the answer is known to be unrecordable.</summary>
    protected virtual void Release()
    {
    }

    /// <summary>Reads a token count (the reader on the value): a whole number, or -1 for anything else, which is skipped.</summary>
    internal static long Count(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value))
        {
            return value;
        }

        reader.Skip();
        return -1;
    }
}

/// <summary>
/// A non-streaming answer: one JSON document, buffered as it passes (up to <see cref="MaxRecordedBytes"/>) and read
/// once it has fully passed. Every dialect's whole-JSON parser derives from this.
/// </summary>
internal abstract class JsonResponseParser : ResponseParser
{
    /// <summary>A non-streaming body larger than this is still proxied, but not recorded.</summary>
    public const int MaxRecordedBytes = 16 * 1024 * 1024;

    private PooledBuffer? _body = new(4096);

    protected sealed override void OnData(ReadOnlySpan<byte> chunk)
    {
        if (_body!.Length + chunk.Length > Math.Min(MaxRecordedBytes, Limit))
        {
            // The body wraps the answer: once it alone is over the limit, so is the turn.
            TooLarge = true;
            Fail("the answer is larger than Mnemo:Memory:MaxTurnBytes allows");
            return;
        }

        _body.Append(chunk);
    }

    protected sealed override void OnEnd()
    {
        var body = _body!.Span;
        var reader = new Utf8JsonReader(body);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            Fail("response is not a JSON object");
            return;
        }

        if (Unreadable(body))
        {
            return;
        }

        OnDocument(body);
        // The answer has been read out of it (a failure already freed it).
        _body?.Dispose();
        _body = null;
    }

    /// <summary>Reads the whole answer; sets <see cref="ResponseParser.Completed"/> or fails.</summary>
    protected abstract void OnDocument(ReadOnlySpan<byte> body);

    protected override void Release()
    {
        _body?.Dispose();
        _body = null;
    }

    protected override void Dispose(bool disposing)
    {
        Release();
        base.Dispose(disposing);
    }
}

/// <summary>A streamed answer of text/event-stream: each event goes to <see cref="ISseSink.OnEvent"/>.</summary>
internal abstract class SseResponseParser : ResponseParser, ISseSink
{
    private readonly SseReader _sse = new();

    public void OnEvent(ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data)
    {
        if (Failure is null && Unreadable(data))
        {
            return;
        }

        OnSseEvent(eventType, data);
    }

    /// <summary>One event of the stream, its data valid Unicode text.</summary>
    protected abstract void OnSseEvent(ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data);

    protected sealed override void OnData(ReadOnlySpan<byte> chunk) => _sse.Feed(chunk, this);

    protected sealed override void OnEnd() => _sse.Complete(this);

    protected override void Dispose(bool disposing)
    {
        _sse.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>A streamed answer of newline-delimited JSON (Ollama): each non-empty line goes to <see cref="OnObject"/>.</summary>
internal abstract class NdjsonResponseParser : ResponseParser, ILineSink
{
    private readonly LineReader _lines = new();

    public void OnLine(ReadOnlySpan<byte> line)
    {
        if (Failure is null && !line.Trim((byte)' ').IsEmpty && !Unreadable(line))
        {
            OnObject(line);
        }
    }

    protected abstract void OnObject(ReadOnlySpan<byte> json);

    protected sealed override void OnData(ReadOnlySpan<byte> chunk) => _lines.Feed(chunk, this);

    protected sealed override void OnEnd() => _lines.Complete(this);

    protected override void Dispose(bool disposing)
    {
        _lines.Dispose();
        base.Dispose(disposing);
    }
}
