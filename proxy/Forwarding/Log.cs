namespace Mnemo.Proxy.Forwarding;

// Prompts, answers, API keys and session ids are never logged; reasons are fixed phrases.
internal static partial class Log
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "A {Dialect} answer was proxied but not recorded: {Reason}.")]
    public static partial void AnswerNotRecorded(ILogger logger, string dialect, string reason);
}
