namespace Mnemo.Proxy.History;

/// <summary>The Lua script of <see cref="RedisHistoryStore"/>'s write: one round trip, touching only one session's keys.</summary>
internal static class RedisScripts
{
    /// <summary>
    /// KEYS: turns, meta. ARGV, for each turn of one session in order (11 each, so one call writes one turn or several):
    /// turn id, element, max stored turns, ttl-ms, hard cap (0: the summary is off), the turn's answer time (Unix ms), its
    /// input, output, cache-read and cache-write tokens (-1: not reported), its model ('' when none).
    /// Returns {code, generation, length} for each turn, in order. Code 1 when appended, 0 when the id is already stored (a
    /// retried write), 2 when the session was erased after the turn was answered (meta <c>e</c>, the tombstone
    /// <see cref="Erase"/> leaves: a turn queued on any replica before an erasure never brings the session back).
    /// Dedupe is exact over the stored window at constant cost: meta <c>i:&lt;id&gt;</c> marks a stored turn, and the mark
    /// of a turn trimmed off the list goes with it (its id is read from the popped element, which <see cref="TurnCodec"/>
    /// starts with <c>{"id":"…"</c>).
    /// With the summary on (a hard cap given), a turn is trimmed past the max only once the summary covers it: meta
    /// <c>c</c> counts the oldest turns of the list the summary covers (set by <see cref="WriteSummary"/>, one less per
    /// turn trimmed); only past the hard cap does an unsummarised turn go.
    /// The session's usage totals are added in the same call: meta <c>ui</c>, <c>uo</c>, <c>ucr</c>, <c>ucw</c> overall and
    /// <c>mi:</c>, <c>mo:</c>, <c>mr:</c>, <c>mw:</c> + model per model; <c>n</c> counts the turns written, <c>t</c> is the
    /// newest one's answer time.
    /// <para>
    /// Every write moves the session's generation (meta <c>g</c>, started from Redis's clock in microseconds when the
    /// session has none, so it only grows even across an erasure or an expiry) and announces it on
    /// <see cref="Changes"/> (see <see cref="SessionCache"/>). When written, a turn's generation is the session's right
    /// after it and its length the list's right after the push (before any trim: 1 means the session had no other
    /// turn); otherwise both are 0.
    /// </para>
    /// </summary>
    /// <remarks>
    /// The turns of one call are written exactly as that many calls in a row would write them; one call shares the
    /// script's fixed cost and the round trip, so a session whose turns queued up (a busy session, or an outage) is
    /// caught up in one round rather than one turn per round.
    /// The meta is read in one <c>HMGET</c> and written in one <c>HSET</c> per turn: a command called from Lua costs
    /// Redis 1 to 3 µs of conversion and bookkeeping besides its own work, and the script runs once per turn (measured
    /// with <c>INFO commandstats</c> on a 100-turn session: 19 commands took about 23 µs of Redis time a call, these 10
    /// about 21 µs). Totals are added in Lua rather than by <c>HINCRBY</c>, which the script's atomicity makes the same;
    /// numbers are formatted with <c>%.0f</c> (Redis would turn a Lua number of more than 14 digits, a generation, into an
    /// exponent).
    /// RPUSH is the first command that can be refused for lack of memory; Redis 7 fixes the out-of-memory state when a
    /// script starts, so either it is refused and nothing is written, or every write of the script goes through.
    /// </remarks>
    public const string Append = Announcing + """

        local all = {'ui', 'uo', 'ucr', 'ucw'}
        local per = {'mi:', 'mo:', 'mr:', 'mw:'}
        local function append(a)
          local id = ARGV[a + 1]
          local ttl = ARGV[a + 4]
          local model = ARGV[a + 11]
          local names = {'e', 'i:' .. id, 'g', 'n', 'c'}
          local adds = {}
          for k = 1, 4 do
            local tokens = tonumber(ARGV[a + 6 + k])
            if tokens > 0 then
              names[#names + 1] = all[k]
              adds[#names] = tokens
              if model ~= '' then
                names[#names + 1] = per[k] .. model
                adds[#names] = tokens
              end
            end
          end
          local held = redis.call('HMGET', KEYS[2], unpack(names))
          if held[1] and tonumber(ARGV[a + 6]) <= tonumber(held[1]) then return 2, 0, 0 end
          if held[2] then
            redis.call('PEXPIRE', KEYS[1], ttl)
            redis.call('PEXPIRE', KEYS[2], ttl)
            return 0, 0, 0
          end
          local length = redis.call('RPUSH', KEYS[1], ARGV[a + 2])
          local pushed = length
          local max = tonumber(ARGV[a + 3])
          local cap = tonumber(ARGV[a + 5])
          local covered = tonumber(held[5] or '0')
          local before = covered
          while length > max and (cap == 0 or covered > 0 or length > cap) do
            local gone = string.match(redis.call('LPOP', KEYS[1]), '^{"id":"(%x+)"')
            if gone then redis.call('HDEL', KEYS[2], 'i:' .. gone) end
            length = length - 1
            if covered > 0 then covered = covered - 1 end
          end
          local at = micros(redis.call('TIME'))
          local g = generation(held[3], at)
          local set = {'v', id, 't', ARGV[a + 6], 'g', g, 'n', count(held[4], 1)}
          if covered ~= before then
            set[#set + 1] = 'c'
            set[#set + 1] = covered
          end
          for k = 6, #names do
            set[#set + 1] = names[k]
            set[#set + 1] = count(held[k], adds[k])
          end
          set[#set + 1] = names[2]
          set[#set + 1] = 1
          redis.call('HSET', KEYS[2], unpack(set))
          redis.call('PEXPIRE', KEYS[1], ttl)
          redis.call('PEXPIRE', KEYS[2], ttl)
          publish(g, id, at)
          return 1, g, pushed
        end
        local results = {}
        for a = 0, #ARGV - 11, 11 do
          local code, g, pushed = append(a)
          results[#results + 1] = code
          results[#results + 1] = g
          results[#results + 1] = pushed
        end
        return results
        """;

    /// <summary>
    /// The channel every session change is announced on: <c>&lt;generation&gt; &lt;turn id or -&gt; &lt;Redis time, µs&gt;
    /// &lt;meta key&gt;</c>; generation 0 is an erasure. One channel for all sessions (not a sharded channel per slot: a
    /// replica would have to subscribe to every slot's channel on every shard); on a cluster Redis carries it to every node.
    /// </summary>
    public const string Changes = "mnemo:v1:changes";

    /// <summary>
    /// Lua functions the write scripts share (KEYS[2] is the session's meta): <c>micros(time)</c>, a <c>TIME</c> reply in
    /// microseconds as a string; <c>count(held, add)</c>, a stored count (absent: 0) plus <c>add</c>, as a string;
    /// <c>generation(held, at)</c>, the generation after <c>held</c> (meta <c>g</c>; absent: started from the clock,
    /// <c>at</c>) as a string; <c>publish(g, id, at)</c>, which announces generation <c>g</c> for turn <c>id</c>
    /// (<c>-</c>: not a turn) on <see cref="Changes"/>; <c>announce(id)</c>, which moves the generation, stores and
    /// publishes it and returns it.
    /// </summary>
    private const string Announcing = """
        local function micros(now) return now[1] .. string.format('%06d', tonumber(now[2])) end
        local function count(held, add) return string.format('%.0f', (tonumber(held or '0') or 0) + add) end
        local function generation(held, at) return string.format('%.0f', tonumber(held or at) + 1) end
        local function publish(g, id, at)
          redis.call('PUBLISH', '
        """ + Changes + """
        ', g .. ' ' .. id .. ' ' .. at .. ' ' .. KEYS[2])
        end
        local function announce(id)
          local at = micros(redis.call('TIME'))
          local g = generation(redis.call('HGET', KEYS[2], 'g'), at)
          redis.call('HSET', KEYS[2], 'g', g)
          publish(g, id, at)
          return g
        end
        """;

    /// <summary>
    /// KEYS: turns, meta. ARGV: clock-skew allowance (ms), tombstone ttl (ms). Deletes the session's turns and meta and
    /// leaves a tombstone in their place: a meta holding only <c>e</c>, the erasure's time on Redis's clock plus the
    /// allowance for replicas' clocks, for the tombstone's ttl (longer when the session starts again: a new turn keeps it).
    /// <see cref="Append"/> refuses every turn answered up to then. Announces generation 0 on <see cref="Changes"/>.
    /// Returns 1 when the session had turns or meta, else 0.
    /// </summary>
    /// <remarks>
    /// In the meta hash rather than a key of its own: every key a script names must be on the node that runs it, and a
    /// third key, absent nearly always, would make each append during a cluster slot migration a TRYAGAIN.
    /// </remarks>
    public const string Erase = Announcing + """

        local now = redis.call('TIME')
        local at = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[1])
        local had = redis.call('EXISTS', KEYS[1]) + redis.call('HEXISTS', KEYS[2], 'n')
        local previous = tonumber(redis.call('HGET', KEYS[2], 'e') or '0')
        if previous > at then at = previous end
        redis.call('DEL', KEYS[1], KEYS[2])
        redis.call('HSET', KEYS[2], 'e', at)
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        redis.call('PUBLISH', '
        """ + Changes + """
        ', '0 - ' .. micros(now) .. ' ' .. KEYS[2])
        if had > 0 then return 1 end
        return 0
        """;

    /// <summary>
    /// KEYS: turns, meta. ARGV: expected covered id ('' = no summary yet), new covered id, summary text (JSON string
    /// content), its token estimate, ttl-ms. Returns 1 when written, 0 when another summary was stored meanwhile (or the
    /// session is gone). Sets meta <c>s</c> (text), <c>sid</c> (covered id), <c>st</c> (tokens) and <c>c</c> (how many of
    /// the list's oldest turns are covered: up to and including the covered id, 0 when it was already trimmed), moves the
    /// generation and announces it, as <see cref="Append"/> does.
    /// </summary>
    /// <remarks>
    /// It scans the list for the covered id: a background call, once per summary, over a list bounded by the hard cap.
    /// </remarks>
    public const string WriteSummary = Announcing + """

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
        announce('-')
        return 1
        """;
}
