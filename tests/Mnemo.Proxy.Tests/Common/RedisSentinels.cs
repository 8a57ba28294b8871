using System.Globalization;
using System.Net;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// A real Redis Sentinel deployment on loopback: one master, one replica and three <c>redis-sentinel</c> processes
/// monitoring them (quorum 2), every process killed on dispose.
/// </summary>
/// <remarks>
/// The master is judged down after <see cref="DownAfter"/> instead of the default 30 s, so a failover takes a few seconds;
/// the replica syncs without the diskless delay (5 s by default), and start waits until it acknowledges a write
/// (<see cref="Replication"/>).
/// </remarks>
public sealed class RedisSentinels : IAsyncDisposable
{
    public const string ServiceName = "mymaster";

    public static readonly TimeSpan DownAfter = TimeSpan.FromSeconds(2);

    private readonly List<RedisServer> _servers = [];
    private readonly List<RedisServer> _sentinels = [];
    private ConnectionMultiplexer? _client;

    private RedisSentinels()
    {
    }

    /// <summary>The master at start.</summary>
    public RedisServer Master => _servers[0];

    /// <summary>The replica at start.</summary>
    public RedisServer Replica => _servers[1];

    public IReadOnlyList<RedisServer> Sentinels => _sentinels;

    /// <summary>The three sentinels and the service name, the way a deployment names it.</summary>
    public string ConnectionString => $"{string.Join(',', _sentinels.Select(s => s.ConnectionString))},serviceName={ServiceName}";

    public static async Task<RedisSentinels> StartAsync()
    {
        var deployment = new RedisSentinels();
        try
        {
            deployment._servers.Add(await RedisServer.StartAsync(Ports.Free(), "redis-server", _ => ["--repl-diskless-sync-delay", "0"]));
            var master = deployment.Master.Port.ToString(CultureInfo.InvariantCulture);
            deployment._servers.Add(await RedisServer.StartAsync(Ports.Free(), "redis-server", _ =>
                ["--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1", master]));
            // A sentinel learns the replicas from the master's INFO, which it asks for every ten seconds once it has
            // connected: the replica is linked first so that the sentinels know it from their first INFO.
            await Eventually.TrueAsync(
                async () => (await deployment.Replica.Server.InfoRawAsync("replication") ?? "").Contains("master_link_status:up", StringComparison.Ordinal),
                "the replica to sync", TimeSpan.FromSeconds(30));
            await Replication.WaitUntilStreamingAsync(deployment.Master.Server);

            var downAfter = ((long)DownAfter.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
            deployment._sentinels.AddRange(await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => RedisServer.StartAsync(Ports.Free(), "redis-sentinel", directory =>
            {
                // A sentinel rewrites its config file with what it learns: it must exist and be writable.
                var config = Path.Combine(directory, "sentinel.conf");
                File.WriteAllText(config, "");
                return
                [
                    config,
                    "--sentinel", "monitor", ServiceName, "127.0.0.1", master, "2",
                    "--sentinel", "down-after-milliseconds", ServiceName, downAfter,
                    "--sentinel", "failover-timeout", ServiceName, "10000",
                ];
            }))));

            // A failover needs a quorum that knows the replica, and a leader elected by a majority of known sentinels.
            await Eventually.TrueAsync(deployment.IsReadyAsync, "the sentinels to know the replica and each other", TimeSpan.FromSeconds(30));
            return deployment;
        }
        catch
        {
            await deployment.DisposeAsync();
            throw;
        }
    }

    /// <summary>The master every sentinel names now.</summary>
    public async Task<RedisServer?> AgreedMasterAsync()
    {
        int? agreed = null;
        foreach (var sentinel in _sentinels)
        {
            if (await Sentinel(sentinel).SentinelGetMasterAddressByNameAsync(ServiceName) is not IPEndPoint master || (agreed ??= master.Port) != master.Port)
            {
                return null;
            }
        }

        return _servers.SingleOrDefault(s => s.Port == agreed);
    }

    /// <summary>Waits until the sentinels agree that <paramref name="server"/> is the master and it says so itself.</summary>
    public async Task WaitUntilMasterAsync(RedisServer server, TimeSpan? timeout = null)
    {
        await Eventually.TrueAsync(
            async () => await AgreedMasterAsync() == server && (await server.Server.RoleAsync()).Value == "master",
            $"the sentinels to name the server on port {server.Port} master", timeout ?? TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        foreach (var server in _sentinels.Concat(_servers))
        {
            await server.DisposeAsync();
        }
    }

    private IServer Sentinel(RedisServer sentinel) =>
        (_client ??= ConnectionMultiplexer.SentinelConnect(string.Join(',', _sentinels.Select(s => s.ConnectionString)) + ",abortConnect=false"))
            .GetServer("127.0.0.1", sentinel.Port);

    private async Task<bool> IsReadyAsync()
    {
        try
        {
            foreach (var sentinel in _sentinels)
            {
                var state = (await Sentinel(sentinel).SentinelMasterAsync(ServiceName)).ToDictionary(p => p.Key, p => p.Value);
                if (state.GetValueOrDefault("flags") != "master" || state.GetValueOrDefault("num-slaves") != "1" || state.GetValueOrDefault("num-other-sentinels") != "2")
                {
                    return false;
                }
            }

            return true;
        }
        catch (RedisException)
        {
            return false;
        }
    }
}
