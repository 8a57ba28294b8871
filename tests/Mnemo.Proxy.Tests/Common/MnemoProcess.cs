using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>Mnemo as a separate OS process, the way it runs in a container: console output captured, stopped by signal.</summary>
public sealed partial class MnemoProcess : IDisposable
{
    private const int SigTerm = 15;

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private MnemoProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => Capture(e.Data);
        _process.ErrorDataReceived += (_, e) => Capture(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Output => string.Join('\n', _output);

    public bool HasExited => _process.HasExited;

    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    /// <summary>The repository root (where Proxy.sln is), found from the test binaries.</summary>
    public static string RepositoryRoot
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Proxy.sln")))
            {
                directory = directory.Parent;
            }

            return directory?.FullName ?? throw new InvalidOperationException("Proxy.sln not found above the test binaries.");
        }
    }

    /// <summary>Starts <c>dotnet</c> (or <paramref name="executable"/>) with the arguments; environment entries with a null value are removed.</summary>
    public static MnemoProcess Start(IEnumerable<string> dotnetArguments, IDictionary<string, string?>? environment = null, string? workingDirectory = null, string executable = "dotnet")
    {
        var info = new ProcessStartInfo(executable)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? AppContext.BaseDirectory,
        };
        foreach (var argument in dotnetArguments)
        {
            info.ArgumentList.Add(argument);
        }

        // Settings the test runner itself may carry must not leak into the proxy.
        info.Environment.Remove("ASPNETCORE_URLS");
        info.Environment.Remove("ASPNETCORE_ENVIRONMENT");
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                info.Environment.Remove(key);
            }
            else
            {
                info.Environment[key] = value;
            }
        }

        return new MnemoProcess(Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start."));
    }

    /// <summary>The built proxy from the test output folder: <c>dotnet Mnemo.Proxy.dll</c>.</summary>
    public static MnemoProcess StartBuilt(IEnumerable<string> arguments, IDictionary<string, string?>? environment = null) =>
        Start([Path.Combine(AppContext.BaseDirectory, "Mnemo.Proxy.dll"), .. arguments], environment);

    /// <summary>
    /// Starts the built proxy on two free ports and waits until it is ready; starts again on new ports when one was
    /// taken between choosing it and binding it (another process, or an outgoing connection's ephemeral port).
    /// </summary>
    public static async Task<(MnemoProcess Process, int ProxyPort, int ManagementPort)> StartBuiltReadyAsync(
        Func<int, int, IEnumerable<string>> arguments, IDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            var proxyPort = Ports.Free();
            var managementPort = Ports.Free();
            var process = StartBuilt(arguments(proxyPort, managementPort), environment);
            using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}") };
            try
            {
                await process.WaitReadyAsync(management, timeout ?? TimeSpan.FromSeconds(30));
                return (process, proxyPort, managementPort);
            }
            catch (InvalidOperationException) when (attempt < 3 && process.Output.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                process.Dispose();
            }
        }
    }

    /// <summary>Waits until <c>/healthz/ready</c> answers 200 on the management port; fails with the output if the process exits or time runs out.</summary>
    public async Task WaitReadyAsync(HttpClient management, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (HasExited)
            {
                throw new InvalidOperationException("the proxy exited:\n" + Output);
            }

            try
            {
                if ((await management.GetAsync("/healthz/ready")).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("not ready in time:\n" + Output);
            }

            await Task.Delay(50);
        }
    }

    /// <summary>What Kubernetes sends to stop a pod.</summary>
    public void Terminate() => Terminate(_process.Id);

    /// <summary>SIGTERM to a process, e.g. one this process started.</summary>
    public static void Terminate(int pid)
    {
        if (Kill(pid, SigTerm) != 0)
        {
            throw new InvalidOperationException($"kill(SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }

        _process.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private void Capture(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }
}
