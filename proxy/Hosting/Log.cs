namespace Mnemo.Proxy.Hosting;

internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "No ConnectionStrings:Redis configured: using the embedded in-process store. History is kept in this process only (lost on restart, not shared between replicas).")]
    public static partial void EmbeddedStore(ILogger logger);
}
