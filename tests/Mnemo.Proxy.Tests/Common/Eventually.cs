namespace Mnemo.Proxy.Tests.Common;

/// <summary>Polls a condition that becomes true asynchronously (the write-back), failing with a message after a deadline.</summary>
internal static class Eventually
{
    public static async Task<T> ValueAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        T value;
        while (true)
        {
            value = await probe();
            if (done(value) || DateTime.UtcNow > deadline)
            {
                break;
            }

            await Task.Delay(20);
        }

        Assert.That(done(value), Is.True, $"timed out waiting for {what}; last value: {value}");
        return value;
    }

    public static Task TrueAsync(Func<Task<bool>> probe, string what, TimeSpan? timeout = null) =>
        ValueAsync(probe, static v => v, what, timeout);
}
