using Microsoft.Extensions.Options;
using Mnemo.Proxy.Admin;
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

    private static readonly RedisValue[] s_summaryFields = ["s", "sid", "st", "c", "g"];

    private readonly RedisConnection _connection;
    private readonly MnemoMetrics _metrics;
    private readonly RedisValue _ttlMs;
    private readonly TimeSpan _ttl;
    private readonly RedisValue _maxStored;
    private readonly RedisValue _hardCap;
    private readonly RedisValue _skewMs;
    private readonly RedisValue _tombstoneMs;

    public RedisHistoryStore(
        RedisConnection connection, MnemoMetrics metrics, IOptions<StoreOptions> store, IOptions<SummaryOptions>? summary = null, IOptions<AdminOptions>? admin = null)
    {
        var erasure = admin?.Value ?? new AdminOptions();
        _skewMs = (long)erasure.ClockSkew.TotalMilliseconds;
        _tombstoneMs = (long)erasure.TombstoneTtl.TotalMilliseconds;
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

    /// <remarks>
    /// The meta fields (the summary's and the generation) and the length ride in the same batch as the range: still one
    /// round trip.
    /// </remarks>
    public async ValueTask<HistoryRead> ReadWithSummaryAsync(SessionKey session, int count, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        RedisKey turnsKey = RedisKeys.Turns(session), metaKey = RedisKeys.Meta(session);
        var batch = database.CreateBatch();
        // The meta first: a write landing between two commands of the batch then makes the generation read older than
        // the turns read, never newer (the session cache relies on that; it dedupes a turn it finds already there).
        var meta = batch.HashGetAsync(metaKey, s_summaryFields);
        var range = batch.ListRangeAsync(turnsKey, -count, -1);
        var length = batch.ListLengthAsync(turnsKey);
        _ = batch.KeyExpireAsync(turnsKey, _ttl, ExpireWhen.Always, CommandFlags.FireAndForget);
        _ = batch.KeyExpireAsync(metaKey, _ttl, ExpireWhen.Always, CommandFlags.FireAndForget);
        _metrics.RoundTrip(RedisOp.Read);
        batch.Execute();
        var items = await range.WaitAsync(cancellationToken).ConfigureAwait(false);
        var total = await length.WaitAsync(cancellationToken).ConfigureAwait(false);
        RedisValue[] fields;
        try
        {
            fields = await meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException)
        {
            // A meta key that is not a hash (WRONGTYPE; the session's writes fail and are retried) costs the read its
            // summary and generation, not its turns.
            fields = new RedisValue[s_summaryFields.Length];
        }

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

        _ = fields[4].TryParse(out long generation);
        return new HistoryRead(kept == turns.Length ? turns : turns[..kept], summary, total, (long)fields[3], generation);
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
        var values = new RedisValue[ArgsPerTurn];
        Arguments(turn, values);
        _metrics.RoundTrip(RedisOp.Write);
        // By hash: SE.Redis would otherwise look the script up by its text (hashing it) on every call.
        return CompleteAsync(turn, database, database.ScriptEvaluateAsync(s_appendHash, keys, values), keys, values, cancellationToken);
    }

    /// <remarks>One <c>EVALSHA</c> for all of them: the script writes them in order, as that many calls would.</remarks>
    public async ValueTask<AppendResult[]> AppendManyAsync(IReadOnlyList<Turn> turns, CancellationToken cancellationToken)
    {
        var session = turns[0].Session;
        var database = _connection.GetDatabaseOrThrow();
        RedisKey[] keys = [RedisKeys.Turns(session), RedisKeys.Meta(session)];
        var values = new RedisValue[ArgsPerTurn * turns.Count];
        for (var i = 0; i < turns.Count; i++)
        {
            if (!string.Equals(turns[i].Session.Slot, session.Slot, StringComparison.Ordinal))
            {
                throw new ArgumentException("the turns of one call are of one session", nameof(turns));
            }

            Arguments(turns[i], values.AsSpan(i * ArgsPerTurn, ArgsPerTurn));
        }

        _metrics.RoundTrip(RedisOp.Write);
        var reply = await CallAsync(database, keys, values, database.ScriptEvaluateAsync(s_appendHash, keys, values), cancellationToken).ConfigureAwait(false);
        var results = new AppendResult[turns.Count];
        for (var i = 0; i < turns.Count; i++)
        {
            results[i] = Result(turns[i], reply, i);
        }

        return results;
    }

    private const int ArgsPerTurn = 11;

    private void Arguments(Turn turn, Span<RedisValue> values)
    {
        var usage = turn.Usage;
        values[0] = turn.Id;
        values[1] = turn.Payload;
        values[2] = _maxStored;
        values[3] = _ttlMs;
        values[4] = _hardCap;
        values[5] = turn.TimestampMs;
        values[6] = usage.Input;
        values[7] = usage.Output;
        values[8] = usage.CacheRead;
        values[9] = usage.CacheWrite;
        values[10] = turn.Model ?? "";
    }

    private static async ValueTask<AppendResult> CompleteAsync(
        Turn turn, IDatabase database, Task<RedisResult> call, RedisKey[] keys, RedisValue[] values, CancellationToken cancellationToken) =>
        Result(turn, await CallAsync(database, keys, values, call, cancellationToken).ConfigureAwait(false), 0);

    private static async ValueTask<RedisResult[]> CallAsync(
        IDatabase database, RedisKey[] keys, RedisValue[] values, Task<RedisResult> call, CancellationToken cancellationToken)
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

        return (RedisResult[])result!;
    }

    /// <summary>The <paramref name="index"/>th turn's {code, generation, length} in the script's reply.</summary>
    private static AppendResult Result(Turn turn, RedisResult[] reply, int index)
    {
        turn.Generation = (long)reply[3 * index + 1];
        turn.PushedLength = (long)reply[3 * index + 2];
        return (long)reply[3 * index] switch
        {
            1 => AppendResult.Written,
            2 => AppendResult.Erased,
            _ => AppendResult.Duplicate,
        };
    }

    /// <remarks>One round trip: the whole list, the meta hash and the expiry, in a batch. No expiry is refreshed.</remarks>
    public async ValueTask<SessionRecord?> ExportAsync(SessionKey session, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        RedisKey turnsKey = RedisKeys.Turns(session), metaKey = RedisKeys.Meta(session);
        var batch = database.CreateBatch();
        var range = batch.ListRangeAsync(turnsKey);
        var meta = batch.HashGetAllAsync(metaKey);
        var ttl = batch.KeyTimeToLiveAsync(turnsKey);
        batch.Execute();
        var items = await range.WaitAsync(cancellationToken).ConfigureAwait(false);
        var fields = await meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        var expiresIn = await ttl.WaitAsync(cancellationToken).ConfigureAwait(false);
        // A meta without a turn count is an erased session's tombstone (or nothing).
        if (items.Length == 0 && !fields.Any(static f => f.Name == "n"))
        {
            return null;
        }

        var elements = new ReadOnlyMemory<byte>[items.Length];
        for (var i = 0; i < items.Length; i++)
        {
            elements[i] = (byte[]?)items[i] ?? [];
        }

        return new SessionRecord(elements, Summary(fields), Totals(fields), expiresIn);
    }

    private static StoredSummary? Summary(HashEntry[] fields)
    {
        byte[]? text = null;
        string? covered = null;
        var tokens = 0;
        foreach (var field in fields)
        {
            switch ((string?)field.Name)
            {
                case "s":
                    text = (byte[]?)field.Value;
                    break;
                case "sid":
                    covered = (string?)field.Value;
                    break;
                case "st":
                    _ = field.Value.TryParse(out tokens);
                    break;
            }
        }

        return text is not null && !string.IsNullOrEmpty(covered) ? new StoredSummary(text, covered, tokens) : null;
    }

    private static SessionTotals Totals(HashEntry[] fields)
    {
        var totals = new SessionTotals();
        foreach (var field in fields)
        {
            var name = (string?)field.Name ?? "";
            _ = field.Value.TryParse(out long value);
            switch (name)
            {
                case "n":
                    totals.Turns = value;
                    continue;
                case "t":
                    totals.LastTurnMs = value;
                    continue;
                case "ui":
                    totals.All.Input = value;
                    continue;
                case "uo":
                    totals.All.Output = value;
                    continue;
                case "ucr":
                    totals.All.CacheRead = value;
                    continue;
                case "ucw":
                    totals.All.CacheWrite = value;
                    continue;
            }

            if (name.Length > 3 && name[0] == 'm' && name[2] == ':' && name[1] is 'i' or 'o' or 'r' or 'w')
            {
                var model = name[3..];
                if (!totals.ByModel.TryGetValue(model, out var perModel))
                {
                    totals.ByModel[model] = perModel = new TokenTotals();
                }

                switch (name[1])
                {
                    case 'i':
                        perModel.Input = value;
                        break;
                    case 'o':
                        perModel.Output = value;
                        break;
                    case 'r':
                        perModel.CacheRead = value;
                        break;
                    default:
                        perModel.CacheWrite = value;
                        break;
                }
            }
        }

        return totals;
    }

    public async ValueTask<bool> EraseAsync(SessionKey session, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        var deleted = await EraseCall(database, session).WaitAsync(cancellationToken).ConfigureAwait(false);
        return (long)deleted > 0;
    }

    // By its text: SE.Redis sends EVALSHA once it has loaded the script on a server, and loads it again after NOSCRIPT.
    private Task<RedisResult> EraseCall(IDatabaseAsync database, SessionKey session) =>
        database.ScriptEvaluateAsync(
            RedisScripts.Erase, [RedisKeys.Turns(session), RedisKeys.Meta(session)], [_skewMs, _tombstoneMs]);

    /// <remarks>
    /// A cursor is <c>&lt;primary&gt;-&lt;SCAN cursor&gt;</c>: the primaries are walked one after the other (each master of a
    /// cluster), each with its own SCAN. A page is filled from whole SCAN replies, so it can hold a little more than
    /// <paramref name="limit"/>, or fewer (even none) when the scan's time budget ran out first; the counts and times of
    /// its sessions come in one more round trip.
    /// </remarks>
    public async ValueTask<SessionPage> ListAsync(string tenant, string? cursor, int limit, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        var primaries = _connection.Primaries();
        if (!TryParseCursor(cursor, primaries.Length, out var server, out var position))
        {
            throw new FormatException("The cursor is not one this API returned.");
        }

        var pattern = RedisKeys.TenantPattern(tenant) + "}:meta";
        var found = new List<string>();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        // A page ends when it is full, or after half a second of scanning: in a large keyspace a small tenant's keys are
        // far apart, and a short page with a cursor is better than a request that scans the whole keyspace at once.
        while (server < primaries.Length && found.Count < limit && System.Diagnostics.Stopwatch.GetElapsedTime(started) < s_pageScanBudget)
        {
            (position, var keys) = await ScanAsync(primaries[server], position, pattern, Math.Max(limit, 100), cancellationToken).ConfigureAwait(false);
            foreach (var key in keys)
            {
                if (RedisKeys.TryParse(key, tenant, out var session, out var kind) && kind == "meta")
                {
                    found.Add(session);
                }
            }

            if (position == 0)
            {
                server++;
            }
        }

        var batch = database.CreateBatch();
        var reads = new (Task<long> Length, Task<RedisValue[]> Meta)[found.Count];
        for (var i = 0; i < found.Count; i++)
        {
            var key = new SessionKey(tenant, found[i]);
            reads[i] = (batch.ListLengthAsync(RedisKeys.Turns(key)), batch.HashGetAsync(RedisKeys.Meta(key), s_listFields));
        }

        batch.Execute();
        var sessions = new List<SessionEntry>(found.Count);
        for (var i = 0; i < found.Count; i++)
        {
            var length = await reads[i].Length.WaitAsync(cancellationToken).ConfigureAwait(false);
            var meta = await reads[i].Meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            _ = meta[0].TryParse(out long written);
            _ = meta[1].TryParse(out long last);
            if (length > 0 || !meta[0].IsNull)
            {
                sessions.Add(new SessionEntry(found[i], length, written, last));
            }
        }

        return new SessionPage(sessions, server < primaries.Length ? FormattableString.Invariant($"{server}-{position}") : null);
    }

    private static readonly RedisValue[] s_listFields = ["n", "t"];

    private static readonly TimeSpan s_pageScanBudget = TimeSpan.FromMilliseconds(500);

    private static bool TryParseCursor(string? cursor, int primaries, out int server, out long position)
    {
        server = 0;
        position = 0;
        if (string.IsNullOrEmpty(cursor))
        {
            return true;
        }

        var dash = cursor.IndexOf('-', StringComparison.Ordinal);
        return dash > 0
            && int.TryParse(cursor.AsSpan(0, dash), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out server)
            && long.TryParse(cursor.AsSpan(dash + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out position)
            && server < primaries;
    }

    private static async Task<(long Cursor, string[] Keys)> ScanAsync(IServer server, long cursor, string pattern, int count, CancellationToken cancellationToken)
    {
        var reply = await server.ExecuteAsync("SCAN", [cursor, "MATCH", pattern, "COUNT", count]).WaitAsync(cancellationToken).ConfigureAwait(false);
        var parts = (RedisResult[])reply!;
        var keys = (string[])parts[1]!;
        return ((long)parts[0], [.. keys.Where(key => RedisConnection.Serves(server, key))]);
    }

    /// <remarks>
    /// Each primary's keyspace is scanned for the tenant's keys, and the sessions of each SCAN reply are erased by one
    /// pipelined batch of erase scripts (each leaves its tombstone, as a single erase does), awaited before the next
    /// reply is asked for: a few round trips per thousand sessions.
    /// </remarks>
    public async ValueTask<EraseResult> EraseTenantAsync(string tenant, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabaseOrThrow();
        var pattern = RedisKeys.TenantPattern(tenant) + "}:*";
        long erased = 0;
        var sessions = new HashSet<string>(StringComparer.Ordinal);
        var calls = new List<Task<RedisResult>>();
        foreach (var primary in _connection.Primaries())
        {
            long position = 0;
            do
            {
                (position, var keys) = await ScanAsync(primary, position, pattern, 1000, cancellationToken).ConfigureAwait(false);
                sessions.Clear();
                foreach (var key in keys)
                {
                    // An erased session's tombstone is erased again (its time only moves forward); it is not counted.
                    if (RedisKeys.TryParse(key, tenant, out var session, out var kind) && kind is "turns" or "meta")
                    {
                        sessions.Add(session);
                    }
                }

                calls.Clear();
                foreach (var session in sessions)
                {
                    calls.Add(EraseCall(database, new SessionKey(tenant, session)));
                }

                foreach (var call in calls)
                {
                    if ((long)await call.WaitAsync(cancellationToken).ConfigureAwait(false) > 0)
                    {
                        erased++;
                    }
                }
            }
            while (position != 0);
        }

        return new EraseResult(erased);
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
