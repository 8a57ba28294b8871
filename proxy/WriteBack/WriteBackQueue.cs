using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.WriteBack;

/// <summary>The bounded hand-off from the response path to the background writer. Enqueueing never waits.</summary>
/// <remarks>
/// The bounds (<see cref="WriteBackOptions.QueueCapacity"/> turns, <see cref="WriteBackOptions.QueueBytes"/> bytes) hold
/// a turn from when it is handed to the writer (see <see cref="Ready"/>) until the writer <see cref="Release"/>s it,
/// written or dropped: a turn in flight or waiting for a retry still takes its room, so an outage fills the queue at the
/// rate turns arrive and no faster, and the writer's memory stays bounded however long it lasts. The channel itself is
/// unbounded; these counters bound it.
/// </remarks>
internal sealed class WriteBackQueue
{
    private readonly Channel<Turn> _channel;
    private readonly MnemoMetrics _metrics;
    private readonly ILogger<WriteBackQueue> _logger;
    private readonly int _capacity;
    private readonly long _capacityBytes;
    private readonly Lock _gate = new();
    private int _depth;
    private long _bytes;

    public WriteBackQueue(IOptions<WriteBackOptions> options, MnemoMetrics metrics, ILogger<WriteBackQueue> logger)
    {
        _capacity = options.Value.QueueCapacity;
        _capacityBytes = options.Value.QueueBytes;
        _channel = Channel.CreateUnbounded<Turn>(new UnboundedChannelOptions { SingleReader = true });
        _metrics = metrics;
        _logger = logger;
        metrics.Registry.AddBeforeCollectCallback(() =>
        {
            metrics.QueueDepth(Depth);
            metrics.QueueBytes(Bytes);
        });
    }

    public PendingTurns Pending { get; } = new();

    public ChannelReader<Turn> Reader => _channel.Reader;

    /// <summary>Turns accepted and not yet written or dropped: queued, in flight, or waiting for a retry.</summary>
    public int Depth => Volatile.Read(ref _depth);

    /// <summary>The payload bytes of those turns.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>
    /// Makes the turn visible to reads on this replica at once, in the order answers end; the write waits for
    /// <see cref="Ready"/> (or <see cref="Withdraw"/>).
    /// </summary>
    public void Hold(Turn turn) => Pending.Add(turn);

    /// <summary>
    /// The turn's request completed: it goes to the writer as soon as every turn of its session held before it is
    /// decided (handed on, written or withdrawn). A session's turns thus reach the writer in the order they were held,
    /// the order their answers ended, however the completions of their requests are timed.
    /// </summary>
    public void Ready(Turn turn)
    {
        if (turn.Erased)
        {
            // Erased while its request was completing: no longer pending, so nothing to keep in order; the writer lets it go.
            bool handed, overBytes;
            lock (_gate)
            {
                handed = TryHand(turn, out overBytes);
            }

            if (!handed)
            {
                Dropped(turn, overBytes);
            }

            return;
        }

        turn.HandOff = HandOff.Ready;
        Flush(turn.Session);
    }

    /// <summary>The turn's request failed before its answer reached the client: it is not written, and no longer holds up the turns after it.</summary>
    public void Withdraw(Turn turn)
    {
        Pending.Remove(turn);
        Flush(turn.Session);
    }

    /// <summary>
    /// Hands the session's ready turns to the writer, oldest first, up to the first turn still held. Also called when a
    /// turn leaves the pending turns other than through the writer (a Strict turn written on its response path).
    /// </summary>
    public void Flush(SessionKey session)
    {
        List<(Turn Turn, bool OverBytes)>? dropped = null;
        lock (_gate)
        {
            foreach (var turn in Pending.Snapshot(session))
            {
                if (turn.HandOff == HandOff.Held)
                {
                    break;
                }

                if (turn.HandOff == HandOff.Ready && !TryHand(turn, out var overBytes))
                {
                    (dropped ??= []).Add((turn, overBytes));
                }
            }
        }

        if (dropped is not null)
        {
            foreach (var (turn, overBytes) in dropped)
            {
                Dropped(turn, overBytes);
            }
        }
    }

    /// <summary>
    /// At shutdown, once no request can complete any more: turns whose requests never completed are let go, and the
    /// ready turns behind them handed on. Returns how many were let go.
    /// </summary>
    public int Settle()
    {
        var abandoned = 0;
        foreach (var turns in Pending.Sessions())
        {
            foreach (var turn in turns)
            {
                if (turn.HandOff == HandOff.Held)
                {
                    Pending.Remove(turn);
                    abandoned++;
                }
            }

            Flush(turns[0].Session);
        }

        return abandoned;
    }

    /// <summary>Into the channel, within the bounds (the caller holds the gate); false: no room, or the writer has stopped.</summary>
    private bool TryHand(Turn turn, out bool overBytes)
    {
        var size = turn.Size;
        // Decided either way: a concurrent walk of the session's turns goes past it.
        turn.HandOff = HandOff.Queued;
        overBytes = _bytes + size > _capacityBytes;
        if (overBytes || _depth >= _capacity || !_channel.Writer.TryWrite(turn))
        {
            return false;
        }

        _depth++;
        _bytes += size;
        return true;
    }

    private void Dropped(Turn turn, bool overBytes)
    {
        Pending.Remove(turn);
        _metrics.WriteBack(WriteBackOutcome.Dropped);
        if (overBytes)
        {
            Log.TurnDroppedQueueBytes(_logger, turn.Size);
        }
        else
        {
            Log.TurnDroppedQueueFull(_logger);
        }
    }

    /// <summary>The writer is done with the turn (written or dropped): its room in the queue is free again.</summary>
    public void Release(Turn turn)
    {
        lock (_gate)
        {
            _depth--;
            _bytes -= turn.Size;
        }
    }

    /// <summary>No more turns are accepted; the writer finishes what is queued.</summary>
    public void Complete() => _channel.Writer.TryComplete();
}
