using System.Diagnostics;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>Runs a command-line tool the test command installed (promtool, helm …) and captures its output.</summary>
internal static class Tool
{
    /// <summary>A tool on PATH, or the file itself when <paramref name="name"/> is a path.</summary>
    public static string Path(string name) =>
        name.Contains('/', StringComparison.Ordinal) ? name
        : RedisServer.Which(name) ?? throw new InvalidOperationException($"{name} is not on PATH; run the test command (tests/run.sh), which installs it.");

    public static async Task<(int ExitCode, string Output)> RunAsync(string name, IEnumerable<string> arguments, string? stdin = null, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(Path(name))
        {
            UseShellExecute = false,
            RedirectStandardInput = stdin is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"{name} {string.Join(' ', arguments)} did not finish in {timeout ?? TimeSpan.FromMinutes(2)}:\n{await output}{await error}");
        }

        return (process.ExitCode, (await output) + (await error));
    }
}
