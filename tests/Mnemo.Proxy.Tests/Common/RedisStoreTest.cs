using Microsoft.Extensions.Logging.Abstractions;
using Mnemo.Proxy.History;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>A real redis-server and Mnemo's connection to it, per fixture; flushed before each test.</summary>
public abstract class RedisStoreTest
{
    private protected RedisServer Redis { get; private set; } = null!;

    private protected RedisConnection Connection { get; private set; } = null!;

    [OneTimeSetUp]
    public async Task StartRedisAsync()
    {
        Redis = await RedisServer.StartAsync();
        Connection = new RedisConnection(ConfigurationOptions.Parse(Redis.ConnectionString), NullLogger<RedisConnection>.Instance);
        await Connection.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => Task.FromResult(Connection.IsConnected), "the connection");
    }

    [OneTimeTearDown]
    public async Task StopRedisAsync()
    {
        await Connection.DisposeAsync();
        await Redis.DisposeAsync();
    }

    [SetUp]
    public Task FlushAsync() => Redis.FlushAsync();
}
