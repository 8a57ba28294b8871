using System.Globalization;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>Redis's own count of the commands it ran, from <c>INFO commandstats</c>.</summary>
internal static class CommandStats
{
    /// <summary>A counter of one command: calls, rejected_calls (redirections among them), failed_calls; 0 when never run.</summary>
    public static async Task<long> ValueAsync(IServer server, string command, string counter)
    {
        var stats = await server.InfoRawAsync("commandstats") ?? "";
        var line = stats.Split('\n').FirstOrDefault(l => l.StartsWith($"cmdstat_{command}:", StringComparison.Ordinal));
        var field = line?.TrimEnd().Split(':', 2)[1].Split(',').Select(f => f.Split('=')).FirstOrDefault(f => f[0] == counter);
        return field is null ? 0 : long.Parse(field[1], CultureInfo.InvariantCulture);
    }
}
