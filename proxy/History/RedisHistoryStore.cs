using Microsoft.Extensions.Options;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Summary;
using StackExchange.Redis;

namespace Mnemo.Proxy.History;

/// <summary>Turns in Redis: one round trip per read (a batch), one <c>EVALSHA</c> per write (see <see cref="RedisScripts"/>).</summary>
internal sealed class RedisHistoryStore : IHistoryStore
{
#pragma warning disable CA5350 // Redis names scripts by SHA1; nothing here is a security use.
    private static readonly byte[] s_appendHash = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(RedisScripts.Append));
    private static readonly byte[] s_summaryHash = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(RedisScripts.WriteSummary));
#pragma warning restore CA5350

    private static readonly RedisValue[] s_summaryFields = ["s", "sid", "st", "c"];

    private readonly RedisConnection _connection;
    private readonly MnemoMetrics _metrics;
    private readonly RedisValue _ttlMs;
    private readonly TimeSpan _ttl;
    private readonly RedisValue _maxStored;
    private readonly RedisValue _hardCap;

    public RedisHistoryStore(RedisConnection connection, MnemoMetrics metrics, IOptions<StoreOptions> store, IOptions<SummaryOptions>? summary = null)
    {
        // 0 tells the script the summary is off: trim to the max as always.
        _hardCap = summary?.Value is { Enabled: true } on ? Math.Max(on.HardMaxStoredTurns, store.Value.MaxStoredTurns) : 0;
        _connection = connection;
        _metrics = metrics;
        _ttl = store.Value.Ttl;
        _ttlMs = (long)_ttl.TotalMilliseconds;
        _maxStored = store.Value.MaxStoredTurns;
    }

    public string Name => "redis";

    /// <remarks>
    /// A batch, not a script: Redis would copy every turn into a Lua string and out again, ten times the cost of the
    /// LRANGE itself. Nor MULTI/EXEC: Redis refuses to queue a transaction at maxmemory, which would cut reads off
    /// exactly when writes fail. The request waits on the LRANGE reply only; the expiry refreshes are fire-and-forget.
    /// </remarks>
    public async ValueTask<StoredTurn[]> ReadAsync(SessionKey session, int count, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        RedisKey turnsKey = RedisKeys.Turns(session), metaKey = RedisKeys.Meta(session);
        var batch = database.CreateBatch();
        var range = batch.ListRangeAsync(turnsKey, -count, -1);
        _ = batch.KeyExpireAsync(turnsKey, _ttl, ExpireWhen.Always, CommandFlags.FireAndForget);
        _ = batch.KeyExpireAsync(metaKey, _ttl, ExpireWhen.Always, CommandFlags.FireAndForget);
        _metrics.RoundTrip(RedisOp.Read);
        batch.Execute();
        // SE.Redis does not take a token: WaitAsync lets the caller's timeout abandon a slow reply.
        var items = await range.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (items.Length == 0)
        {
            return [];
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

        return kept == turns.Length ? turns : turns[..kept];
    }

    /// <remarks>The meta fields and the length ride in the same batch as the range: still one round trip.</remarks>
    public async ValueTask<HistoryRead> ReadWithSummaryAsync(SessionKey session, int count, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        RedisKey turnsKey = RedisKeys.Turns(session), metaKey = RedisKeys.Meta(session);
        var batch = database.CreateBatch();
        var range = batch.ListRangeAsync(turnsKey, -count, -1);
        var meta = batch.HashGetAsync(metaKey, s_summaryFields);
        var length = batch.ListLengthAsync(turnsKey);
        _ = batch.KeyExpireAsync(turnsKey, _ttl, ExpireWhen.Always, CommandFlags.FireAndForget);
        _ = batch.KeyExpireAsync(metaKey, _ttl, ExpireWhen.Always, CommandFlags.FireAndForget);
        _metrics.RoundTrip(RedisOp.Read);
        batch.Execute();
        var items = await range.WaitAsync(cancellationToken).ConfigureAwait(false);
        var fields = await meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        var total = await length.WaitAsync(cancellationToken).ConfigureAwait(false);
        var turns = new StoredTurn[items.Length];
        var kept = 0;
        foreach (var item in items)
        {
            if ((byte[]?)item is { } bytes && TurnCodec.TryRead(bytes, out var turn))
            {
                turns[kept++] = turn;
            }
        }

        StoredSummary? summary = null;
        if ((byte[]?)fields[0] is { } text && (string?)fields[1] is { Length: > 0 } coveredId)
        {
            summary = new StoredSummary(text, coveredId, (int)fields[2]);
        }

        return new HistoryRead(kept == turns.Length ? turns : turns[..kept], summary, total, (long)fields[3]);
    }

    public ValueTask<SummaryWrite> WriteSummaryAsync(
        SessionKey session, string? expectedCoveredId, string coveredId, byte[] summary, int tokens, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        RedisKey[] keys = [RedisKeys.Turns(session), RedisKeys.Meta(session)];
        RedisValue[] values = [expectedCoveredId ?? "", coveredId, summary, tokens, _ttlMs];
        _metrics.RoundTrip(RedisOp.Write);
        return CompleteSummaryAsync(database, database.ScriptEvaluateAsync(s_summaryHash, keys, values), keys, values, cancellationToken);
    }

    private static async ValueTask<SummaryWrite> CompleteSummaryAsync(
        IDatabase database, Task<RedisResult> call, RedisKey[] keys, RedisValue[] values, CancellationToken cancellationToken)
    {
        RedisResult result;
        try
        {
            result = await call.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            result = await database.ScriptEvaluateAsync(RedisScripts.WriteSummary, keys, values).WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        return (long)result == 1 ? SummaryWrite.Written : SummaryWrite.Superseded;
    }

    public ValueTask<AppendResult> AppendAsync(Turn turn, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        RedisKey[] keys = [RedisKeys.Turns(turn.Session), RedisKeys.Meta(turn.Session)];
        RedisValue[] values = [turn.Id, turn.Payload, _maxStored, _ttlMs, _hardCap];
        _metrics.RoundTrip(RedisOp.Write);
        // By hash: SE.Redis would otherwise look the script up by its text (hashing it) on every call.
        return CompleteAsync(database, database.ScriptEvaluateAsync(s_appendHash, keys, values), keys, values, cancellationToken);
    }

    private static async ValueTask<AppendResult> CompleteAsync(
        IDatabase database, Task<RedisResult> call, RedisKey[] keys, RedisValue[] values, CancellationToken cancellationToken)
    {
        RedisResult result;
        try
        {
            result = cancellationToken.CanBeCanceled ? await call.WaitAsync(cancellationToken).ConfigureAwait(false) : await call.ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            // Redis restarted or failed over and lost its script cache: SE.Redis loads the script and runs it.
            result = await database.ScriptEvaluateAsync(RedisScripts.Append, keys, values).WaitAsync(cancellationToken).ConfigureAwait(false);
        }

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
