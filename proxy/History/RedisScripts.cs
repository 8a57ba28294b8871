namespace Mnemo.Proxy.History;

/// <summary>The Lua script of <see cref="RedisHistoryStore"/>'s write: one round trip, touching only one session's keys.</summary>
internal static class RedisScripts
{
    /// <summary>
    /// KEYS: turns, meta. ARGV: turn id, element, max stored turns, ttl-ms.
    /// Returns 1 when appended, 0 when the id is already stored (a retried write). Dedupe is exact over the stored
    /// window at constant cost: meta <c>i:&lt;id&gt;</c> marks a stored turn, and the mark of a turn trimmed off the list goes
    /// with it (its id is read from the popped element, which <see cref="TurnCodec"/> starts with <c>{"id":"…"</c>).
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
        local length = redis.call('RPUSH', KEYS[1], ARGV[2])
        local max = tonumber(ARGV[3])
        while length > max do
          local id = string.match(redis.call('LPOP', KEYS[1]), '^{"id":"(%x+)"')
          if id then redis.call('HDEL', KEYS[2], 'i:' .. id) end
          length = length - 1
        end
        redis.call('HSET', KEYS[2], 'v', ARGV[1])
        redis.call('HINCRBY', KEYS[2], 'n', 1)
        redis.call('PEXPIRE', KEYS[1], ARGV[4])
        redis.call('PEXPIRE', KEYS[2], ARGV[4])
        return 1
        """;
}
