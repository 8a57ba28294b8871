using Mnemo.Proxy.History;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Resilience;

/// <summary>SE.Redis is made to reconnect promptly, unless the configuration chose otherwise.</summary>
public sealed class ReconnectOptionsTests
{
    [Test]
    public void PreferPromptReconnect_PlainConnectionString_TriesAgainWithinHalfASecond()
    {
        var options = ConfigurationOptions.Parse("127.0.0.1:6379");
        RedisConnection.PreferPromptReconnect(options);

        Assert.That(options.HeartbeatInterval, Is.LessThanOrEqualTo(TimeSpan.FromMilliseconds(200)), "reconnects are only tried on a heartbeat");
        Assert.That(options.ReconnectRetryPolicy.ShouldRetry(50, 400), Is.True, "still after 50 tries");
        Assert.That(options.ReconnectRetryPolicy.ShouldRetry(1, 100), Is.False, "not a busy loop");
    }

    [Test]
    public void PreferPromptReconnect_SettingsChosenInTheConfiguration_AreKept()
    {
        var options = ConfigurationOptions.Parse("127.0.0.1:6379,connectTimeout=1234");
        options.ReconnectRetryPolicy = new LinearRetry(3000);
        options.HeartbeatInterval = TimeSpan.FromSeconds(3);
        RedisConnection.PreferPromptReconnect(options);

        Assert.That(options.ConnectTimeout, Is.EqualTo(1234));
        Assert.That(options.HeartbeatInterval, Is.EqualTo(TimeSpan.FromSeconds(3)));
        Assert.That(options.ReconnectRetryPolicy.ShouldRetry(1, 2000), Is.False);
    }
}
