namespace Mnemo.Proxy.Resilience;

internal static partial class Log
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Warning, Message = "Redis {Operation} circuit opened for {BreakDuration}: requests are forwarded without memory meanwhile.")]
    public static partial void CircuitOpened(ILogger logger, string operation, TimeSpan breakDuration);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Redis {Operation} circuit closed: memory resumed.")]
    public static partial void CircuitClosed(ILogger logger, string operation);
}
