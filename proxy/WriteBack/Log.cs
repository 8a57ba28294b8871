namespace Mnemo.Proxy.WriteBack;

// Session ids, tenants and turn contents are never logged.
internal static partial class Log
{
    [LoggerMessage(EventId = 500, Level = LogLevel.Error, Message = "Write-back queue is full (Mnemo:WriteBack:QueueCapacity): a turn was dropped. Is Redis reachable?")]
    public static partial void TurnDroppedQueueFull(ILogger logger);

    [LoggerMessage(EventId = 501, Level = LogLevel.Error, Message = "A turn could not be written after all retries and was dropped ({ExceptionType}).")]
    public static partial void TurnDropped(ILogger logger, string exceptionType);

    [LoggerMessage(EventId = 502, Level = LogLevel.Information, Message = "Shutting down: writing {Count} queued turns.")]
    public static partial void Draining(ILogger logger, int count);

    [LoggerMessage(EventId = 503, Level = LogLevel.Error, Message = "Shutdown timeout reached: {Count} turns were not written.")]
    public static partial void DroppedAtShutdown(ILogger logger, int count);

    [LoggerMessage(EventId = 504, Level = LogLevel.Warning, Message = "A Strict turn could not be written before its response ended ({ExceptionType}); it goes to the retry queue.")]
    public static partial void StrictWriteDeferred(ILogger logger, string exceptionType);

    [LoggerMessage(EventId = 505, Level = LogLevel.Warning, Message = "A Strict turn waits behind an earlier turn of its session that is not written yet; it is written after its response, in order.")]
    public static partial void StrictWriteBehindEarlierTurn(ILogger logger);

    [LoggerMessage(EventId = 506, Level = LogLevel.Error, Message = "Write-back queue is full (Mnemo:WriteBack:QueueBytes): a turn of {Bytes} bytes was dropped. Is Redis reachable?")]
    public static partial void TurnDroppedQueueBytes(ILogger logger, int bytes);

    [LoggerMessage(EventId = 507, Level = LogLevel.Warning, Message = "A turn could not be counted in tokens ({ExceptionType}); it is stored with its estimate.")]
    public static partial void TurnNotCounted(ILogger logger, string exceptionType);

    [LoggerMessage(EventId = 508, Level = LogLevel.Error, Message = "A turn waited longer than an erasure's tombstone lasts (Mnemo:Admin:TombstoneTtl) and was dropped: written now, it could bring back a session erased meanwhile.")]
    public static partial void TurnTooOld(ILogger logger);

    [LoggerMessage(EventId = 509, Level = LogLevel.Warning, Message = "Shutting down: {Count} turns whose requests never completed were not written.")]
    public static partial void AbandonedAtShutdown(ILogger logger, int count);
}
