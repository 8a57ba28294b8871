using System.Globalization;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// A real Redis Cluster on loopback: three masters and three replicas (six <c>redis-server --cluster-enabled yes</c>
/// processes joined by <c>redis-cli --cluster create</c>), every process killed on dispose.
/// </summary>
/// <remarks>
/// A node is declared failed after <see cref="NodeTimeout"/> (the default, 15 s, would make a failover test take a
/// minute), and replicas sync without the diskless delay (5 s by default). Start returns once every master's replica
/// has acknowledged a write (<see cref="Replication"/>), so a master killed by a test has been replicating.
/// </remarks>
public sealed class RedisCluster : IAsyncDisposable
{
    public static readonly TimeSpan NodeTimeout = TimeSpan.FromSeconds(2);

    private readonly List<RedisServer> _nodes = [];
    private ConnectionMultiplexer? _client;

    private RedisCluster()
    {
    }

    /// <summary>Every node started, the killed ones included.</summary>
    public IReadOnlyList<RedisServer> Nodes => _nodes;

    /// <summary>All six nodes as seeds, the way a deployment names a cluster.</summary>
    public string ConnectionString => string.Join(',', _nodes.Select(n => n.ConnectionString));

    /// <summary>A test-side cluster client for asserting on keys (never used by the code under test).</summary>
    public IDatabase Db => Client.GetDatabase();

    public ConnectionMultiplexer Client => _client ??= ConnectionMultiplexer.Connect($"{ConnectionString},allowAdmin=true,abortConnect=false");

    public static async Task<RedisCluster> StartAsync()
    {
        var cluster = new RedisCluster();
        try
        {
            var timeout = ((long)NodeTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
            var nodes = await Task.WhenAll(BusPorts(6).Select(port => RedisServer.StartAsync(port, "redis-server", directory =>
            [
                "--cluster-enabled", "yes", "--cluster-config-file", Path.Combine(directory, "nodes.conf"),
                "--cluster-node-timeout", timeout, "--repl-diskless-sync-delay", "0",
            ])));
            cluster._nodes.AddRange(nodes);

            var (exit, output) = await Tool.RunAsync("redis-cli",
                ["--cluster", "create", .. nodes.Select(n => n.ConnectionString), "--cluster-replicas", "1", "--cluster-yes"],
                timeout: TimeSpan.FromSeconds(60));
            if (exit != 0)
            {
                throw new InvalidOperationException($"redis-cli --cluster create failed ({exit}):\n{output}");
            }

            await cluster.WaitUntilHealthyAsync();
            await Task.WhenAll((await cluster.ConfigurationAsync()).Nodes.Where(n => !n.IsReplica && n.Slots.Count > 0)
                .Select(n => Replication.WaitUntilStreamingAsync(cluster.Client.GetServer(n.EndPoint!))));

            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Waits until every running node says <c>cluster_state:ok</c>, sees the others connected and agrees on which master
    /// serves which slots, all slots are served by running masters (after a kill: once replicas have taken over), and
    /// every running replica's link is up (a replica that never synced cannot take over).
    /// </summary>
    public async Task WaitUntilHealthyAsync(TimeSpan? timeout = null)
    {
        await Eventually.TrueAsync(IsHealthyAsync, "the Redis Cluster to be healthy (state ok, replicas linked)", timeout ?? TimeSpan.FromSeconds(30));
    }

    /// <summary>The cluster as one running node sees it (CLUSTER NODES).</summary>
    public async Task<ClusterConfiguration> ConfigurationAsync()
    {
        foreach (var node in _nodes.Where(n => n.IsRunning))
        {
            try
            {
                if (await Server(node).ClusterNodesAsync() is { } configuration)
                {
                    return configuration;
                }
            }
            catch (RedisException)
            {
            }
        }

        throw new InvalidOperationException("no cluster node answered CLUSTER NODES.");
    }

    /// <summary>The node that serves a key's slot now.</summary>
    public async Task<RedisServer> MasterOfAsync(RedisKey key)
    {
        var slot = Client.HashSlot(key);
        var owner = (await ConfigurationAsync()).GetBySlot(slot)
            ?? throw new InvalidOperationException($"no node serves slot {slot}.");
        return NodeAt(owner.EndPoint!);
    }

    /// <summary>A node's own view, bypassing slot routing.</summary>
    public IServer Server(RedisServer node) => Client.GetServer("127.0.0.1", node.Port);

    public RedisServer NodeAt(EndPoint endpoint) => _nodes.Single(n => n.Port == endpoint switch
    {
        IPEndPoint ip => ip.Port,
        DnsEndPoint dns => dns.Port,
        _ => -1,
    });

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }
    }

    private async Task<bool> IsHealthyAsync()
    {
        try
        {
            var running = _nodes.Where(n => n.IsRunning).Select(n => n.Port).ToHashSet();
            string? agreed = null;
            ClusterConfiguration? view = null;
            foreach (var port in running)
            {
                var server = Client.GetServer("127.0.0.1", port);
                var info = (string?)await server.ExecuteAsync("CLUSTER", "INFO") ?? "";
                view = await server.ClusterNodesAsync();
                if (!info.Contains("cluster_state:ok", StringComparison.Ordinal) || view is null
                    || view.Nodes.Any(n => running.Contains(Port(n)) && (n.IsFail || n.IsPossiblyFail || !n.IsConnected)))
                {
                    return false;
                }

                // Every slot served by a running master: after a kill, only once a replica has taken the slots over.
                var masters = view.Nodes.Where(n => !n.IsReplica && n.Slots.Count > 0).ToArray();
                var layout = string.Join(' ', masters.Select(n => $"{n.NodeId}:{string.Join(',', n.Slots)}").Order());
                if (masters.Any(n => !running.Contains(Port(n))) || masters.Sum(n => n.Slots.Sum(s => s.To - s.From + 1)) != 16384
                    || (agreed is not null && layout != agreed))
                {
                    return false;
                }

                agreed = layout;
            }

            foreach (var replica in view?.Nodes.Where(n => n.IsReplica && running.Contains(Port(n))) ?? [])
            {
                var replication = await Client.GetServer(replica.EndPoint!).InfoRawAsync("replication") ?? "";
                if (!replication.Contains("master_link_status:up", StringComparison.Ordinal))
                {
                    return false;
                }
            }

            return view is not null;
        }
        catch (RedisException)
        {
            return false;
        }
    }

    private static int Port(ClusterNode node) => node.EndPoint switch
    {
        IPEndPoint ip => ip.Port,
        DnsEndPoint dns => dns.Port,
        _ => -1,
    };

    /// <summary>
    /// Ports a cluster node can take: its bus listens on port + 10000, so both must be free. They are picked below the
    /// ephemeral range (32768 and up on Linux), where no outgoing connection can take the bus port meanwhile.
    /// </summary>
    private static int[] BusPorts(int count)
    {
        var ports = new List<int>(count);
        while (ports.Count < count)
        {
            var port = Random.Shared.Next(20_000, 22_768);
            if (!ports.Contains(port) && CanBind(port) && CanBind(port + 10_000))
            {
                ports.Add(port);
            }
        }

        return [.. ports];
    }

    private static bool CanBind(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
