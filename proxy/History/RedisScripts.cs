namespace Mnemo.Proxy.History;

/// <summary>The Lua script of <see cref="RedisHistoryStore"/>'s write: one round trip, touching only one session's keys.</summary>
internal static class RedisScripts
{
    /// <summary>
    /// KEYS: turns, meta. ARGV: turn id, element, max stored turns, ttl-ms.
    /// Returns 1 when appended, 0 when the id is already stored (a retried write). Dedupe is exact over the stored
    /// window at constant cost: meta <c>i:&lt;id&gt;</c> marks a stored turn and <c>s:&lt;n&gt;</c> names the n-th turn, so the
    /// mark of the turn trimmed off the list is dropped with it.
    /// </summary>
    /// <remarks>
    /// HSETNX is the first command that can be refused for lack of memory; Redis 7 fixes the out-of-memory state when a
    /// script starts, so either it is refused and nothing is written, or every write of the script goes through.
    /// </remarks>
    public const string Append = """
        if redis.call('HSETNX', KEYS[2], 'i:' .. ARGV[1], 1) == 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[4])
          redis.call('PEXPIRE', KEYS[2], ARGV[4])
          return 0
        end
        local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
        local max = tonumber(ARGV[3])
        redis.call('HSET', KEYS[2], 's:' .. n, ARGV[1], 'v', ARGV[1])
        redis.call('RPUSH', KEYS[1], ARGV[2])
        redis.call('LTRIM', KEYS[1], -max, -1)
        if n > max then
          local old = 's:' .. (n - max)
          local id = redis.call('HGET', KEYS[2], old)
          if id then redis.call('HDEL', KEYS[2], old, 'i:' .. id) end
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[4])
        redis.call('PEXPIRE', KEYS[2], ARGV[4])
        return 1
        """;
}
