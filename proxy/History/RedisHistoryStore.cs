using Microsoft.Extensions.Options;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using StackExchange.Redis;

namespace Mnemo.Proxy.History;

/// <summary>Turns in Redis: one <c>EVALSHA</c> per read, one per write (see <see cref="RedisScripts"/>).</summary>
internal sealed class RedisHistoryStore : IHistoryStore
{
    private readonly RedisConnection _connection;
    private readonly MnemoMetrics _metrics;
    private readonly RedisValue _ttlMs;
    private readonly RedisValue _maxStored;

    public RedisHistoryStore(RedisConnection connection, MnemoMetrics metrics, IOptions<MemoryOptions> memory)
    {
        _connection = connection;
        _metrics = metrics;
        _ttlMs = (long)memory.Value.Ttl.TotalMilliseconds;
        _maxStored = memory.Value.MaxStoredTurns;
    }

    public string Name => "redis";

    public async ValueTask<HistoryWindow> ReadAsync(SessionKey session, int count, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        _metrics.RoundTrip(RedisOp.Read);
        // SE.Redis does not take a token: WaitAsync lets the caller's timeout abandon a slow reply.
        var result = await database
            .ScriptEvaluateAsync(RedisScripts.Read, [RedisKeys.Turns(session), RedisKeys.Meta(session)], [count, _ttlMs])
            .WaitAsync(cancellationToken)
            .ConfigureAwait(false);

        if (result.Length < 2 || (RedisResult[]?)result[1] is not { Length: > 0 } items)
        {
            return HistoryWindow.Empty;
        }

        var turns = new StoredTurn[items.Length];
        var kept = 0;
        foreach (var item in items)
        {
            // An element this version cannot read is skipped rather than failing the request.
            if ((byte[]?)item is { } bytes && TurnCodec.TryRead(bytes, out var turn))
            {
                turns[kept++] = turn;
            }
        }

        return new HistoryWindow(kept == turns.Length ? turns : turns[..kept]);
    }

    public async ValueTask<AppendResult> AppendAsync(Turn turn, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        _metrics.RoundTrip(RedisOp.Write);
        var result = await database
            .ScriptEvaluateAsync(
                RedisScripts.Append,
                [RedisKeys.Turns(turn.Session), RedisKeys.Meta(turn.Session)],
                [turn.Id, turn.Payload, _maxStored, _ttlMs])
            .WaitAsync(cancellationToken)
            .ConfigureAwait(false);

        return (long)result == 1 ? AppendResult.Written : AppendResult.Duplicate;
    }

    public ValueTask<StoreStatus> CheckAsync(CancellationToken cancellationToken)
    {
        // Readiness is polled often; the multiplexer's own heartbeat keeps IsConnected current without a round trip.
        // HasConnected first: it latches while the connection is up.
        var everConnected = _connection.HasConnected;
        var status = _connection.IsConnected ? new StoreStatus(true, "redis: connected")
            : everConnected ? new StoreStatus(true, "redis: unavailable, forwarding without memory")
            : new StoreStatus(false, "redis: not connected yet");
        return ValueTask.FromResult(status);
    }
}
