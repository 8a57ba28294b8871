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
}
