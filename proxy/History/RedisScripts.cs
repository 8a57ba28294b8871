namespace Mnemo.Proxy.History;

/// <summary>The Lua script of <see cref="RedisHistoryStore"/>'s write: one round trip, touching only one session's keys.</summary>
internal static class RedisScripts
{
    /// <summary>
    /// KEYS: turns, meta. ARGV: turn id, element, max stored turns, ttl-ms, hard cap (0: the summary is off).
    /// Returns 1 when appended, 0 when the id is already stored (a retried write). Dedupe is exact over the stored
    /// window at constant cost: meta <c>i:&lt;id&gt;</c> marks a stored turn, and the mark of a turn trimmed off the list goes
    /// with it (its id is read from the popped element, which <see cref="TurnCodec"/> starts with <c>{"id":"…"</c>).
    /// With the summary on (a hard cap given), a turn is trimmed past the max only once the summary covers it: meta
    /// <c>c</c> counts the oldest turns of the list the summary covers (set by <see cref="WriteSummary"/>, one less per
    /// turn trimmed); only past the hard cap does an unsummarised turn go.
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
        local cap = tonumber(ARGV[5])
        local covered = tonumber(redis.call('HGET', KEYS[2], 'c') or '0')
        local before = covered
        while length > max and (cap == 0 or covered > 0 or length > cap) do
          local id = string.match(redis.call('LPOP', KEYS[1]), '^{"id":"(%x+)"')
          if id then redis.call('HDEL', KEYS[2], 'i:' .. id) end
          length = length - 1
          if covered > 0 then covered = covered - 1 end
        end
        if covered ~= before then redis.call('HSET', KEYS[2], 'c', covered) end
        redis.call('HSET', KEYS[2], 'v', ARGV[1])
        redis.call('HINCRBY', KEYS[2], 'n', 1)
        redis.call('PEXPIRE', KEYS[1], ARGV[4])
        redis.call('PEXPIRE', KEYS[2], ARGV[4])
        return 1
        """;

    /// <summary>
    /// KEYS: turns, meta. ARGV: expected covered id ('' = no summary yet), new covered id, summary text (JSON string
    /// content), its token estimate, ttl-ms. Returns 1 when written, 0 when another summary was stored meanwhile (or the
    /// session is gone). Sets meta <c>s</c> (text), <c>sid</c> (covered id), <c>st</c> (tokens) and <c>c</c> (how many of
    /// the list's oldest turns are covered: up to and including the covered id, 0 when it was already trimmed).
    /// </summary>
    /// <remarks>
    /// It scans the list for the covered id: a background call, once per summary, over a list bounded by the hard cap.
    /// </remarks>
    public const string WriteSummary = """
        local current = redis.call('HGET', KEYS[2], 'sid') or ''
        if current ~= ARGV[1] then return 0 end
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        local prefix = '{"id":"' .. ARGV[2] .. '"'
        local items = redis.call('LRANGE', KEYS[1], 0, -1)
        local covered = 0
        for i = 1, #items do
          if string.sub(items[i], 1, #prefix) == prefix then
            covered = i
            break
          end
        end
        redis.call('HSET', KEYS[2], 's', ARGV[3], 'sid', ARGV[2], 'st', ARGV[4], 'c', covered)
        redis.call('PEXPIRE', KEYS[1], ARGV[5])
        redis.call('PEXPIRE', KEYS[2], ARGV[5])
        return 1
        """;
}
