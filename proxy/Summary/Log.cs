namespace Mnemo.Proxy.Summary;

// Prompts, summaries, answers, API keys, tenants and session ids are never logged: only fixed reasons and types.
internal static partial class Log
{
    [LoggerMessage(EventId = 600, Level = LogLevel.Warning, Message = "Summary call failed ({Reason}); requests keep the window without a new summary.")]
    public static partial void SummaryFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 601, Level = LogLevel.Debug, Message = "Summary superseded: another summary was stored meanwhile.")]
    public static partial void SummarySuperseded(ILogger logger);

    [LoggerMessage(EventId = 602, Level = LogLevel.Debug, Message = "Summary queue full; the trigger is dropped (the next write triggers again).")]
    public static partial void SummaryQueueFull(ILogger logger);

    [LoggerMessage(EventId = 603, Level = LogLevel.Information, Message = "Rolling summary on: model set, dialect {Dialect}, credentials {Credentials}.")]
    public static partial void SummaryEnabled(ILogger logger, string dialect, SummaryCredentials credentials);
}
