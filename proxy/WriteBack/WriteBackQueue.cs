using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.WriteBack;

/// <summary>The bounded hand-off from the response path to the background writer. Enqueueing never waits.</summary>
internal sealed class WriteBackQueue
{
    private readonly Channel<Turn> _channel;
    private readonly MnemoMetrics _metrics;
    private readonly ILogger<WriteBackQueue> _logger;
    private int _depth;

    public WriteBackQueue(IOptions<WriteBackOptions> options, MnemoMetrics metrics, ILogger<WriteBackQueue> logger)
    {
        _channel = Channel.CreateBounded<Turn>(new BoundedChannelOptions(options.Value.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _metrics = metrics;
        _logger = logger;
        metrics.Registry.AddBeforeCollectCallback(() => metrics.QueueDepth(Volatile.Read(ref _depth)));
    }

    public PendingTurns Pending { get; } = new();

    public ChannelReader<Turn> Reader => _channel.Reader;

    public int Depth => Volatile.Read(ref _depth);

    /// <summary>Makes the turn visible to reads on this replica at once; the write itself waits for <see cref="Enqueue"/>.</summary>
    public void Hold(Turn turn) => Pending.Add(turn);

    /// <summary>Hands a held turn to the writer; a full queue or a stopped writer drops it, counted and logged.</summary>
    public void Enqueue(Turn turn)
    {
        if (_channel.Writer.TryWrite(turn))
        {
            Interlocked.Increment(ref _depth);
            return;
        }

        Pending.Remove(turn);
        _metrics.WriteBack(WriteBackOutcome.Dropped);
        Log.TurnDroppedQueueFull(_logger);
    }

    public void Dequeued(int count) => Interlocked.Add(ref _depth, -count);

    /// <summary>No more turns are accepted; the writer finishes what is queued.</summary>
    public void Complete() => _channel.Writer.TryComplete();
}
