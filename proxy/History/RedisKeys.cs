using Mnemo.Proxy.Sessions;
using StackExchange.Redis;

namespace Mnemo.Proxy.History;

/// <summary>
/// <c>mnemo:v1:{tenant:session}:turns</c> and <c>…:meta</c>. The braces are a Redis Cluster hash tag: every key of a
/// session hashes to one slot, so one script can touch them all.
/// </summary>
internal static class RedisKeys
{
    public const string Prefix = "mnemo:v1:";

    public static RedisKey Turns(SessionKey session) => string.Concat(Prefix + "{", session.Slot, "}:turns");

    public static RedisKey Meta(SessionKey session) => string.Concat(Prefix + "{", session.Slot, "}:meta");

    /// <summary>The session's slot (<c>tenant:session</c>) from its meta key, as <see cref="Meta"/> makes it.</summary>
    public static bool TryMetaSlot(ReadOnlySpan<char> key, out string slot)
    {
        const string Head = Prefix + "{";
        const string Tail = "}:meta";
        if (key.Length > Head.Length + Tail.Length && key.StartsWith(Head, StringComparison.Ordinal) && key.EndsWith(Tail, StringComparison.Ordinal))
        {
            slot = key[Head.Length..^Tail.Length].ToString();
            return true;
        }

        slot = "";
        return false;
    }

    /// <summary>SCAN pattern of every key of a tenant's sessions (the tenant's characters are never glob syntax).</summary>
    public static string TenantPattern(string tenant) => string.Concat(Prefix + "{", tenant, ":*");

    /// <summary>The session id and the kind (<c>turns</c>, <c>meta</c>) of a tenant's key, or false.</summary>
    public static bool TryParse(string key, string tenant, out string session, out string kind)
    {
        session = kind = "";
        var head = Prefix.Length + 1 + tenant.Length + 1;
        var close = key.LastIndexOf("}:", StringComparison.Ordinal);
        if (close < head || !key.StartsWith(Prefix + "{", StringComparison.Ordinal)
            || string.CompareOrdinal(key, Prefix.Length + 1, tenant, 0, tenant.Length) != 0 || key[head - 1] != ':')
        {
            return false;
        }

        session = key[head..close];
        kind = key[(close + 2)..];
        return session.Length > 0;
    }
}
