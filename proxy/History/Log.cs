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
}
