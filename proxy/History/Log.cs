using StackExchange.Redis;

namespace Mnemo.Proxy.History;

// Session ids, tenants, turn contents and connection strings are never logged.
internal static partial class Log
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "Redis is not reachable yet; requests are forwarded without memory until it is.")]
    public static partial void NotConnectedAtStart(ILogger logger);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Redis connection failed ({FailureType}, {ConnectionType}); reads degrade, writes are retried.")]
    public static partial void ConnectionFailed(ILogger logger, ConnectionFailureType failureType, ConnectionType connectionType);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Redis connection restored ({ConnectionType}).")]
    public static partial void ConnectionRestored(ILogger logger, ConnectionType connectionType);

    [LoggerMessage(EventId = 203, Level = LogLevel.Error, Message = "Could not start connecting to Redis ({ExceptionType}).")]
    public static partial void ConnectFailed(ILogger logger, string exceptionType);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "Could not load the Lua scripts into Redis ({ExceptionType}); they are loaded on first use instead.")]
    public static partial void ScriptLoadFailed(ILogger logger, string exceptionType);

    [LoggerMessage(EventId = 210, Level = LogLevel.Debug, Message = "History read failed ({ExceptionType}); forwarding without memory.")]
    public static partial void ReadDegraded(ILogger logger, string exceptionType);

    [LoggerMessage(EventId = 220, Level = LogLevel.Information, Message = "Session cache serving: its invalidation subscription is confirmed.")]
    public static partial void CacheUp(ILogger logger);

    [LoggerMessage(EventId = 221, Level = LogLevel.Warning, Message = "Session cache cleared and bypassed: its invalidation subscription was lost ({Entries} sessions dropped); reads go to Redis until it is back.")]
    public static partial void CacheDown(ILogger logger, long entries);

    [LoggerMessage(EventId = 222, Level = LogLevel.Warning, Message = "Session cache could not subscribe or probe ({ExceptionType}); it stays bypassed and tries again.")]
    public static partial void CacheSubscribeFailed(ILogger logger, string exceptionType);

    [LoggerMessage(EventId = 223, Level = LogLevel.Debug, Message = "Session cache ignored an announcement it could not read.")]
    public static partial void CacheBadAnnouncement(ILogger logger);
}
