using System.Diagnostics;
using System.Globalization;
using Mnemo.Proxy.Tests.Common;
using Mnemo.Proxy.Tests.WriteBack;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Resilience;

/// <summary>
/// Redis down for 3 s under sustained load, with the defaults: no turn is lost, each session's turns stay in order, and
/// memory is back within about a second of Redis.
/// </summary>
public sealed class OutageAtRateTests : FunctionalTest
{
    private const int Sessions = 24;

    /// <summary>Requests per second, all sessions together: well within what a loaded two-core machine sustains.</summary>
    private const int Rate = 240;

    private static readonly TimeSpan s_outage = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The queue holds what arrives in 4.5 s: the 3 s outage and about a second more. Turns waiting for their retry
    /// take their room in it, so this is enough only when writes resume within about a second of Redis and the backlog
    /// goes out in batches; a writer that retries one turn at a time while the queue fills behind it drops turns.
    /// </summary>
    private static readonly int s_queueCapacity = (int)(Rate * 4.5);

    [Test]
    public async Task RedisDownThreeSecondsUnderLoad_NoTurnIsLost_OrderIsKept_AndMemoryIsBackWithinASecond()
    {
        await using var proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Mnemo:WriteBack:QueueCapacity"] = s_queueCapacity.ToString(CultureInfo.InvariantCulture),
            // Every turn of the test stays stored (the check counts them all), and little is injected (cheap requests).
            ["Mnemo:Memory:MaxStoredTurns"] = "10000",
            ["Mnemo:Memory:MaxContextTurns"] = "2",
        });

        var load = PacedLoad.Start(proxy, Upstream, Sessions, Rate);
        using var sampling = new CancellationTokenSource();
        var peakDepth = SamplePeakDepthAsync(proxy, sampling.Token);
        string? dir = null;
        TimeSpan down, up;
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            dir = (await Redis.Server.ConfigGetAsync("dir")).Single().Value;

            // Down with everything written so far saved, atomically (no persistence otherwise: a restart comes back empty).
            down = load.Now;
            await ShutdownSavingAsync();
            await Task.Delay(s_outage - (load.Now - down));
            await Redis.StartAsync(CancellationToken.None);
            up = load.Now;

            await Task.Delay(TimeSpan.FromSeconds(2.5));
        }
        finally
        {
            await load.StopAsync();
            await sampling.CancelAsync();
        }

        try
        {
            var exchanges = load.All.ToArray();
            var rate = exchanges.Count(e => e.Started < down) / down.TotalSeconds;
            var back = exchanges.Where(e => e.Started >= up && e.Memory is "hit" or "empty").Select(e => e.Ended - up).DefaultIfEmpty(TimeSpan.MaxValue).Min();

            var expected = load.Sessions.ToDictionary(s => s, load.Completed);
            var stored = new Dictionary<string, string[]>();
            await Eventually.TrueAsync(
                async () =>
                {
                    try
                    {
                        foreach (var session in load.Sessions)
                        {
                            stored[session] = (await StoredTurnsAsync(session)).Select(t => t.GetProperty("messages")[0].GetProperty("content").GetString()!).ToArray();
                        }
                    }
                    catch (RedisConnectionException)
                    {
                        // The test's own client has not reconnected yet.
                        return false;
                    }

                    return load.Sessions.All(s => stored[s].Length >= expected[s].Length) || await DroppedAsync(proxy) > 0;
                },
                "every answered turn to be written (or some to be dropped)",
                TimeSpan.FromSeconds(15));

            var dropped = await DroppedAsync(proxy);
            var lost = load.Sessions.Sum(s => Math.Max(0, expected[s].Length - stored[s].Length));
            TestContext.Progress.WriteLine(
                $"outage at rate: {exchanges.Length} requests, {rate:F0}/s before the outage, queue capacity {s_queueCapacity}, " +
                $"outage {(up - down).TotalSeconds:F2} s, peak queue depth {await peakDepth}, turns lost {lost}, dropped {dropped}, memory back after {(back == TimeSpan.MaxValue ? "never" : $"{back.TotalMilliseconds:F0} ms")}");

            Assert.That(exchanges.Where(e => !e.Completed), Is.Empty, "every request was answered whole");
            Assert.That(exchanges.Count(e => e.Started > down && e.Ended < up), Is.GreaterThan(Sessions), "the load went on during the outage");
            Assert.That(dropped, Is.Zero, "mnemo_writeback_total{outcome=\"dropped\"}");
            foreach (var session in load.Sessions)
            {
                Assert.That(stored[session], Is.EqualTo(expected[session]), $"{session}: every answered turn stored once, in order");
            }

            Assert.That(back, Is.LessThan(TimeSpan.FromSeconds(1.5)), "memory back (the first non-degraded answer) after Redis answers again");
        }
        finally
        {
            // The next restart of this fixture's Redis must come back empty again.
            if (dir is not null)
            {
                File.Delete(Path.Combine(dir, "dump.rdb"));
            }
        }
    }

    private static async Task<double> SamplePeakDepthAsync(ProxyHost proxy, CancellationToken stop)
    {
        var peak = 0d;
        while (!stop.IsCancellationRequested)
        {
            peak = Math.Max(peak, WriteBackTests.Metric(await proxy.Management.GetStringAsync("/metrics", CancellationToken.None), "mnemo_writeback_queue_depth"));
            try
            {
                await Task.Delay(50, stop);
            }
            catch (OperationCanceledException)
            {
            }
        }

        return peak;
    }

    private static async Task<double> DroppedAsync(ProxyHost proxy) =>
        WriteBackTests.Metric(await proxy.Management.GetStringAsync("/metrics"), "mnemo_writeback_total{outcome=\"dropped\"}");

    /// <summary><c>SHUTDOWN SAVE</c>: Redis writes its snapshot and exits in one step, so no write is lost between the two.</summary>
    private async Task ShutdownSavingAsync()
    {
        try
        {
            await Redis.Server.ExecuteAsync("SHUTDOWN", "SAVE");
        }
        catch (RedisConnectionException)
        {
            // The server hung up, as it should.
        }

        var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 5;
        while (Redis.IsRunning && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(5);
        }

        Assert.That(Redis.IsRunning, Is.False, "redis-server exited on SHUTDOWN SAVE");
        await Redis.StopAsync();
    }

    /// <summary>
    /// One sequential conversation per session (the next question once the last answer is read), each session's
    /// questions on a fixed schedule, so the load arrives at the same rate whether Redis is up or down, never faster.
    /// </summary>
    private sealed class PacedLoad
    {
        private readonly long _started = Stopwatch.GetTimestamp();
        private readonly Dictionary<string, List<Exchange>> _exchanges;
        private readonly CancellationTokenSource _stop = new();
        private Task _running = Task.CompletedTask;

        private PacedLoad(string[] sessions)
        {
            Sessions = sessions;
            _exchanges = sessions.ToDictionary(s => s, _ => new List<Exchange>(), StringComparer.Ordinal);
        }

        public IReadOnlyList<string> Sessions { get; }

        public TimeSpan Now => Stopwatch.GetElapsedTime(_started);

        public IEnumerable<Exchange> All => _exchanges.Values.SelectMany(e => e);

        public static PacedLoad Start(ProxyHost proxy, FakeUpstream upstream, int sessions, int rate)
        {
            var load = new PacedLoad([.. Enumerable.Range(0, sessions).Select(i => $"rate-{i}")]);
            var json = upstream.Fixture("completion.json");
            var stream = upstream.Fixture("stream.sse");
            var interval = TimeSpan.FromSeconds((double)sessions / rate);
            load._running = Task.WhenAll(load.Sessions.Select((session, i) =>
                Task.Run(() => load.ConverseAsync(proxy, session, interval, interval * i / sessions, json, stream))));
            return load;
        }

        /// <summary>The questions whose answers reached the client whole, in order: exactly what the session must have stored.</summary>
        public string[] Completed(string session) => [.. _exchanges[session].Where(e => e.Completed).Select(e => e.Question)];

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _running;
            _stop.Dispose();
        }

        private async Task ConverseAsync(ProxyHost proxy, string session, TimeSpan interval, TimeSpan offset, byte[] json, byte[] stream)
        {
            var exchanges = _exchanges[session];
            var next = Now + offset;
            for (var turn = 1; !_stop.IsCancellationRequested; turn++)
            {
                var wait = next - Now;
                if (wait > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(wait, _stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }

                // A session that fell behind (the machine stalled) does not catch up in a burst: the rate stays at most Rate.
                next = Max(next + interval, Now);
                var question = $"{session} question {turn}";
                var streamed = turn % 2 == 0;
                using var request = ProxyHost.Chat(UserTurn(question, streamed), session);
                var started = Now;
                string memory = "";
                var completed = false;
                try
                {
                    // Not cancelled by the stop: a question asked is always answered and recorded.
                    using var response = await proxy.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    memory = response.Headers.TryGetValues("X-Mnemo-Memory", out var values) ? string.Join(",", values) : "";
                    var answer = await response.Content.ReadAsByteArrayAsync();
                    completed = response.IsSuccessStatusCode && answer.AsSpan().SequenceEqual(streamed ? stream : json);
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
                {
                }

                lock (exchanges)
                {
                    exchanges.Add(new Exchange(question, started, Now, memory, completed));
                }
            }
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private sealed record Exchange(string Question, TimeSpan Started, TimeSpan Ended, string Memory, bool Completed);
}
