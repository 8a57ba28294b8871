namespace Mnemo.Proxy.History;

/// <summary>The Lua scripts of <see cref="RedisHistoryStore"/>: each is one round trip and touches only one session's keys.</summary>
internal static class RedisScripts
{
    /// <summary>
    /// KEYS: turns, meta. ARGV: count, ttl-ms.
    /// Returns {} for an unknown session, else {version, {oldest … newest}}; refreshes the expiry of both keys.
    /// </summary>
    public const string Read = """
        local v = redis.call('HGET', KEYS[2], 'v')
        if not v then return {} end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        return {v, redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)}
        """;

    /// <summary>
    /// KEYS: turns, meta. ARGV: turn id, element, max stored turns, ttl-ms.
    /// Returns 1 when appended, 0 when the id was already stored (a retried write). The ids of the stored turns are
    /// kept in meta 'ids' as "id," runs of fixed length, so the dedupe window is the stored list itself.
    /// </summary>
    public const string Append = """
        local tag = ARGV[1] .. ','
        local ids = redis.call('HGET', KEYS[2], 'ids') or ''
        if string.find(ids, tag, 1, true) then
          redis.call('PEXPIRE', KEYS[1], ARGV[4])
          redis.call('PEXPIRE', KEYS[2], ARGV[4])
          return 0
        end
        local max = tonumber(ARGV[3])
        redis.call('RPUSH', KEYS[1], ARGV[2])
        redis.call('LTRIM', KEYS[1], -max, -1)
        ids = ids .. tag
        local keep = max * #tag
        if #ids > keep then ids = string.sub(ids, -keep) end
        redis.call('HSET', KEYS[2], 'ids', ids, 'v', ARGV[1])
        redis.call('HINCRBY', KEYS[2], 'n', 1)
        redis.call('PEXPIRE', KEYS[1], ARGV[4])
        redis.call('PEXPIRE', KEYS[2], ARGV[4])
        return 1
        """;
}
