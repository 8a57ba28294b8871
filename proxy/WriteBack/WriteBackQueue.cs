using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.WriteBack;

/// <summary>The bounded hand-off from the response path to the background writer. Enqueueing never waits.</summary>
/// <remarks>
/// The bounds (<see cref="WriteBackOptions.QueueCapacity"/> turns, <see cref="WriteBackOptions.QueueBytes"/> bytes) hold
/// a turn from <see cref="Enqueue"/> until the writer <see cref="Release"/>s it, written or dropped: a turn in flight or
/// waiting for a retry still takes its room, so an outage fills the queue at the rate turns arrive and no faster, and
/// the writer's memory stays bounded however long it lasts. The channel itself is unbounded; these counters bound it.
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

    /// <summary>Makes the turn visible to reads on this replica at once; the write itself waits for <see cref="Enqueue"/>.</summary>
    public void Hold(Turn turn) => Pending.Add(turn);

    /// <summary>Hands a held turn to the writer; a full queue or a stopped writer drops it, counted and logged.</summary>
    public void Enqueue(Turn turn)
    {
        var size = turn.Size;
        bool overBytes;
        lock (_gate)
        {
            overBytes = _bytes + size > _capacityBytes;
            if (!overBytes && _depth < _capacity && _channel.Writer.TryWrite(turn))
            {
                _depth++;
                _bytes += size;
                return;
            }
        }

        Pending.Remove(turn);
        _metrics.WriteBack(WriteBackOutcome.Dropped);
        if (overBytes)
        {
            Log.TurnDroppedQueueBytes(_logger, size);
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
