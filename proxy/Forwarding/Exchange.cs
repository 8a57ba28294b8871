using Mnemo.Proxy.Buffers;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.Forwarding;

/// <summary>
/// The state of one proxied request, shared by the pipeline step, the response transform and the tee.
/// Timestamps are <see cref="System.Diagnostics.Stopwatch"/> ticks; 0 means the point was not reached.
/// </summary>
internal sealed class Exchange : IDisposable
{
    public Exchange(HttpContext context, long started)
    {
        Context = context;
        Started = started;
    }

    public HttpContext Context { get; }

    public long Started { get; }

    public DialectId DialectId { get; set; } = DialectId.Other;

    public Dialect? Dialect { get; set; }

    public MemoryState Memory { get; set; } = MemoryState.Off;

    public int ContextTurns { get; set; }

    /// <summary>Mnemo answered the request itself with an error; nothing was forwarded.</summary>
    public bool Rejected { get; set; }

    /// <summary>The answer is to be stored as a turn once complete.</summary>
    public bool Record { get; set; }

    /// <summary>The request asked for <see cref="Context.Consistency.Strict"/>: its turn is written before its response ends.</summary>
    public bool Strict { get; set; }

    public SessionKey? Session { get; set; }

    /// <summary>Where the turn this request stores starts in the session's running token count (-1: not read); see <see cref="Context.ContextWindow.NextPosition"/>.</summary>
    public long NextPosition { get; set; } = -1;

    /// <summary>The session's newest turn, when it was not written yet at the read; see <see cref="Context.ContextWindow.NewestPending"/>.</summary>
    public Turn? NewestPending { get; set; }

    public SplicePlan? Plan { get; set; }

    /// <summary>The client's body as received (the plan's inputs are ranges of it).</summary>
    public PooledBuffer? Body { get; set; }

    /// <summary>The stream the body was forwarded from (over <see cref="Body"/> or <see cref="SplicedBody"/>).</summary>
    public BodyStream? Forwarded { get; set; }

    /// <summary>The body with history spliced in, rented for the duration of the request.</summary>
    public byte[]? SplicedBody { get; set; }

    public ResponseParser? Parser { get; set; }

    /// <summary>Why an answer that was to be recorded could not be, when known before reading it.</summary>
    public string? NotRecordable { get; set; }

    public Turn? Turn { get; set; }

    /// <summary>Why the answered exchange's turn is not stored, when that is by rule rather than by failure.</summary>
    public NotStoredReason? NotStored { get; set; }

    /// <summary>Bytes of answer the turn may keep (<c>Mnemo:Memory:MaxTurnBytes</c> less the inputs).</summary>
    public int AnswerLimit { get; set; } = int.MaxValue;

    /// <summary>Called once when the answer's last event has been read, before its bytes go on to the client.</summary>
    public Action<Exchange>? AnswerEnded { get; set; }

    /// <summary>A Strict request's write of its turn: the answer's last bytes wait for it.</summary>
    public Task? DurableWrite { get; set; }

    /// <summary>The upstream's Content-Length, when it sent one (-1 otherwise).</summary>
    public long UpstreamLength { get; set; } = -1;

    public int UpstreamStatus { get; set; }

    public long ForwardStarted { get; set; }

    public long UpstreamHeaders { get; set; }

    public long UpstreamFirstByte { get; set; }

    public long UpstreamEnded { get; set; }

    public void Dispose()
    {
        // Held after the request by the server and the upstream connection: it must not keep the buffer alive.
        Forwarded?.Detach();
        Forwarded = null;

        Parser?.Dispose();
        Parser = null;
        Body?.Dispose();
        Body = null;
        if (SplicedBody is { } spliced)
        {
            SplicedBody = null;
            ByteArrays.Return(spliced);
        }
    }
}
