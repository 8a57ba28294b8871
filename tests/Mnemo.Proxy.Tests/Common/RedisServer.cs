using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>A real <c>redis-server</c> on a free loopback port, in a temporary directory, killed on dispose.</summary>
public sealed class RedisServer : IAsyncDisposable
{
    private readonly string _directory;
    private readonly string _executable;
    private readonly string[] _arguments;
    private Process? _process;
    private ConnectionMultiplexer? _client;

    private RedisServer(int port, string executable = "redis-server", Func<string, IEnumerable<string>>? arguments = null)
    {
        Port = port;
        _executable = executable;
        _directory = Directory.CreateTempSubdirectory("mnemo-redis-").FullName;
        _arguments = arguments is null ? [] : [.. arguments(_directory)];
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>A test-side client for asserting on keys (never used by the code under test).</summary>
    public IDatabase Db => (_client ??= ConnectionMultiplexer.Connect($"{ConnectionString},allowAdmin=true,abortConnect=false")).GetDatabase();

    public IServer Server => Db.Multiplexer.GetServer(ConnectionString);

    public static async Task<RedisServer> StartAsync()
    {
        var server = new RedisServer(Ports.Free());
        await server.StartAsync(CancellationToken.None);
        return server;
    }

    /// <summary>
    /// A server with more arguments (a cluster node) or another executable (<c>redis-sentinel</c>, whose config file must
    /// be its first argument). <paramref name="arguments"/> is given the server's own directory; what it returns goes
    /// before the common arguments.
    /// </summary>
    internal static async Task<RedisServer> StartAsync(int port, string executable, Func<string, IEnumerable<string>> arguments)
    {
        var server = new RedisServer(port, executable, arguments);
        try
        {
            await server.StartAsync(CancellationToken.None);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var executable = Which(_executable)
            ?? throw new InvalidOperationException($"{_executable} is not on PATH; run the test command (tests/run.sh), which installs it.");
        var info = new ProcessStartInfo(executable)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in _arguments.Concat(
        [
            "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", _directory, "--loglevel", "warning",
        ]))
        {
            info.ArgumentList.Add(arg);
        }

        _process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start.");
        _process.OutputDataReceived += static (_, _) => { };
        _process.ErrorDataReceived += static (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!await PingAsync(cancellationToken))
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"{_executable} on port {Port} did not answer PING.");
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    public async Task StopAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    public async Task FlushAsync() => await Server.FlushAllDatabasesAsync();

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        await StopAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task<bool> PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", Port, cancellationToken);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), cancellationToken);
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer, cancellationToken);
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    internal static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
}
