using Mnemo.Proxy.Metrics;
using StackExchange.Redis;

namespace Mnemo.Proxy.History;

/// <summary>
/// The one <see cref="ConnectionMultiplexer"/> of the process. Connecting never blocks start-up: until Redis answers,
/// reads fail fast and requests are forwarded without memory.
/// </summary>
internal sealed class RedisConnection : IHostedService, IAsyncDisposable
{
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
        _logger = logger;
    }

    /// <summary>Null until the first connection attempt has finished.</summary>
    public IDatabase? Database => _multiplexer?.GetDatabase();

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
