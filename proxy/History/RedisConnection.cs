using Mnemo.Proxy.Metrics;
using StackExchange.Redis;

namespace Mnemo.Proxy.History;

/// <summary>
/// The one <see cref="ConnectionMultiplexer"/> of the process. Connecting never blocks start-up: until Redis answers,
/// reads fail fast and requests are forwarded without memory.
/// </summary>
internal sealed class RedisConnection : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan s_heartbeat = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan s_reconnectInterval = TimeSpan.FromMilliseconds(400);

    private readonly ConfigurationOptions _options;
    private readonly ILogger<RedisConnection> _logger;
    private ConnectionMultiplexer? _multiplexer;
    private Task? _connecting;
    private volatile bool _hasConnected;

    public RedisConnection(ConfigurationOptions options, ILogger<RedisConnection> logger)
    {
        _options = options.Clone();
        _options.AbortOnConnectFail = false;
        // Commands issued while disconnected fail at once instead of waiting in a backlog: the read path degrades
        // immediately and the writer's retry policy decides when to try again.
        _options.BacklogPolicy = BacklogPolicy.FailFast;
        _options.ClientName ??= "mnemo";
        PreferPromptReconnect(_options);
        _logger = logger;
    }

    /// <summary>The connection came back after it was lost (raised on SE.Redis's thread: keep handlers short).</summary>
    public event Action? Restored;

    /// <summary>Null until the first connection attempt has finished.</summary>
    public IDatabase? Database => _multiplexer?.GetDatabase();

    /// <summary>Null until the first connection attempt has finished (connected or not; it keeps trying).</summary>
    public ConnectionMultiplexer? Multiplexer => _multiplexer;

    /// <summary>The primaries (one, or each master of a cluster), in a stable order: what a keyspace scan walks.</summary>
    /// <remarks>
    /// On a cluster they are the masters that serve slots in the cluster's own configuration (CLUSTER NODES, as the
    /// connection last read it), not the servers the connection takes for primaries: right after it connects, or while a
    /// failover settles, it can take a replica for one, and a scan of that replica would list its master's keys twice.
    /// </remarks>
    public IServer[] Primaries()
    {
        if (_multiplexer is not { } multiplexer)
        {
            return [];
        }

        var servers = multiplexer.GetServers();
        var cluster = servers.Select(static s => s.ClusterConfiguration).FirstOrDefault(static c => c is not null);
        var primaries = cluster is null
            ? servers.Where(static s => !s.IsReplica)
            : cluster.Nodes.Where(static n => !n.IsReplica && n.Slots.Count > 0 && n.EndPoint is not null)
                .Select(n => multiplexer.GetServer(n.EndPoint!));
        return [.. primaries.OrderBy(static s => s.EndPoint.ToString(), StringComparer.Ordinal)];
    }

    /// <summary>
    /// Whether a key a scan of <paramref name="primary"/> found is that primary's to report: on a cluster, only when the
    /// primary serves the key's slot (a slot being moved has its keys on two masters for a while).
    /// </summary>
    public static bool Serves(IServer primary, RedisKey key)
    {
        if (primary.ClusterConfiguration is not { } cluster)
        {
            return true;
        }

        var owner = cluster.GetBySlot(key)?.EndPoint;
        return owner is not null && string.Equals(owner.ToString(), primary.EndPoint.ToString(), StringComparison.Ordinal);
    }

    public bool IsConnected => _multiplexer?.IsConnected == true;

    /// <summary>Has Redis answered at least once since start.</summary>
    public bool HasConnected
    {
        get
        {
            if (!_hasConnected && IsConnected)
            {
                _hasConnected = true;
            }

            return _hasConnected;
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _connecting = ConnectAsync();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_connecting is not null)
        {
            await _connecting.ConfigureAwait(false);
        }

        if (_multiplexer is not null)
        {
            await _multiplexer.DisposeAsync().ConfigureAwait(false);
        }
    }

    public IDatabase GetDatabaseOrThrow() =>
        Database ?? throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, "Redis is not connected yet.");

    private async Task ConnectAsync()
    {
        try
        {
            var multiplexer = await ConnectionMultiplexer.ConnectAsync(_options).ConfigureAwait(false);
            multiplexer.ConnectionFailed += (_, e) => Log.ConnectionFailed(_logger, e.FailureType, e.ConnectionType);
            multiplexer.ConnectionRestored += (_, e) =>
            {
                Log.ConnectionRestored(_logger, e.ConnectionType);
                if (e.ConnectionType == ConnectionType.Interactive)
                {
                    _ = WarmScriptsAsync(multiplexer);
                    Restored?.Invoke();
                }
            };
            _multiplexer = multiplexer;
            if (multiplexer.IsConnected)
            {
                await WarmScriptsAsync(multiplexer).ConfigureAwait(false);
            }
            else
            {
                Log.NotConnectedAtStart(_logger);
            }
        }
        catch (Exception ex) when (ex is RedisException or ArgumentException)
        {
            Log.ConnectFailed(_logger, ex.GetType().Name);
        }
    }

    /// <summary>
    /// Reconnects within about half a second of Redis coming back, where SE.Redis's defaults take seconds: it only tries
    /// on its heartbeat (every second), and its default <see cref="ExponentialRetry"/> (half the connect timeout, growing)
    /// lets at least 2.5 s pass between tries. Memory (reads) and the write-back resume when the connection does.
    /// </summary>
    /// <remarks>
    /// A configuration string cannot set either (SE.Redis has no keyword for them), so a value other than the default
    /// provider's came from code or from a provider made for a cloud's Redis: that one is kept. A try that has not
    /// connected within the retry interval is abandoned and made again, so the interval stays well above a TCP connect's
    /// round trip; the connect timeout (<c>connectTimeout</c>, which a string can set) is left as configured.
    /// </remarks>
    internal static void PreferPromptReconnect(ConfigurationOptions options)
    {
        if (options.HeartbeatInterval == options.Defaults.HeartbeatInterval && options.HeartbeatInterval > s_heartbeat)
        {
            options.HeartbeatInterval = s_heartbeat;
        }

        if (options.Defaults.ReconnectRetryPolicy is null && options.ReconnectRetryPolicy is ExponentialRetry)
        {
            options.ReconnectRetryPolicy = new LinearRetry((int)s_reconnectInterval.TotalMilliseconds);
        }
    }

    // Loading the script up front means every write sends only EVALSHA; after a Redis restart empties the
    // script cache this runs again on reconnect.
    private async Task WarmScriptsAsync(ConnectionMultiplexer multiplexer)
    {
        try
        {
            foreach (var endpoint in multiplexer.GetEndPoints())
            {
                var server = multiplexer.GetServer(endpoint);
                if (!server.IsConnected || server.IsReplica)
                {
                    continue;
                }

                await server.ScriptLoadAsync(RedisScripts.Append).ConfigureAwait(false);
            }
        }
        catch (RedisException ex)
        {
            Log.ScriptLoadFailed(_logger, ex.GetType().Name);
        }
    }
}
