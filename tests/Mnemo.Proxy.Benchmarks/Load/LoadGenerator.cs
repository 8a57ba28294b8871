using System.Diagnostics;
using System.Net;

namespace Mnemo.Proxy.Benchmarks.Load;

/// <summary>
/// An HTTP load generator written for this benchmark (wrk measures neither time to first byte nor response headers,
/// and Debian's wrk has no fixed-rate mode). Closed loop: N workers, each sending its next request when the last one
/// ended. Open loop: requests leave on a fixed schedule whatever the server does, and latency is measured from the
/// scheduled time, so a stalled server shows in the tail instead of slowing the load (no coordinated omission).
/// </summary>
internal static class LoadGenerator
{
    public static HttpClient CreateClient() => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AutomaticDecompression = DecompressionMethods.None,
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
        MaxConnectionsPerServer = int.MaxValue,
        ConnectTimeout = TimeSpan.FromSeconds(5),
    })
    {
        Timeout = TimeSpan.FromMinutes(2),
    };

    public static async Task<RunResult> ClosedAsync(string label, HttpClient client, RequestFactory factory, int concurrency, TimeSpan duration)
    {
        var samples = new List<Sample>[concurrency];
        var started = Stopwatch.GetTimestamp();
        await RunWorkersAsync(client, factory, concurrency, duration, samples);
        var elapsed = Stopwatch.GetElapsedTime(started);
        return RunResult.From(label, concurrency, samples.SelectMany(s => s), elapsed);
    }

    public static async Task<RunResult> OpenAsync(string label, HttpClient client, RequestFactory factory, double rate, TimeSpan duration)
    {
        var started = Stopwatch.GetTimestamp();
        var samples = await OpenRunAsync(client, factory, rate, duration);
        return RunResult.From(label, 0, samples, Stopwatch.GetElapsedTime(started)) with { Rate = rate };
    }

    /// <summary>Sends one request and reads the whole response; latency counts from <paramref name="scheduledAt"/>.</summary>
    public static async Task<Sample> SendAsync(HttpClient client, HttpRequestMessage request, RequestFactory factory, long scheduledAt = 0)
    {
        var buffer = new byte[16 * 1024];
        var start = scheduledAt != 0 ? scheduledAt : Stopwatch.GetTimestamp();
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var stream = await response.Content.ReadAsStreamAsync();
            long first = 0;
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                if (first == 0)
                {
                    first = Stopwatch.GetTimestamp();
                }
            }

            var end = Stopwatch.GetTimestamp();
            var ok = response.StatusCode == HttpStatusCode.OK && factory.Check(response);
            return new Sample(end - start, first == 0 ? end - start : first - start, ok);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            return new Sample(Stopwatch.GetTimestamp() - start, 0, false);
        }
        finally
        {
            request.Dispose();
        }
    }

    private static async Task RunWorkersAsync(HttpClient client, RequestFactory factory, int concurrency, TimeSpan duration, List<Sample>[]? record)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var workers = new Task[concurrency];
        for (var w = 0; w < concurrency; w++)
        {
            var worker = w;
            var samples = record is null ? null : (record[w] = []);
            workers[w] = Task.Run(async () =>
            {
                var sequence = 0;
                while (Stopwatch.GetTimestamp() < deadline)
                {
                    var sample = await SendAsync(client, factory.Create(worker, sequence++), factory);
                    samples?.Add(sample);
                }
            });
        }

        await Task.WhenAll(workers);
    }

    /// <summary>Requests of an open loop outstanding at once, at most.</summary>
    private const int MaxInFlight = 2048;

    private static async Task<List<Sample>> OpenRunAsync(HttpClient client, RequestFactory factory, double rate, TimeSpan duration)
    {
        var interval = Stopwatch.Frequency / rate;
        var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 100);
        var end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var running = new List<Task<Sample>>();
        var inFlight = 0;
        for (long i = 0; ; i++)
        {
            var due = start + (long)(i * interval);
            if (due >= end)
            {
                break;
            }

            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
            if (wait > TimeSpan.FromMilliseconds(2))
            {
                await Task.Delay(wait - TimeSpan.FromMilliseconds(1));
            }

            while (Stopwatch.GetTimestamp() < due)
            {
                Thread.SpinWait(20);
            }

            // An overloaded target would otherwise gather requests without bound (a machine slower for a while makes
            // the fixed rate an overload): past the cap, a request due is counted as an error without being sent.
            if (Volatile.Read(ref inFlight) >= MaxInFlight)
            {
                running.Add(Task.FromResult(new Sample(Stopwatch.GetTimestamp() - due, 0, false)));
                continue;
            }

            var request = factory.Create((int)(i % factory.Sessions), (int)i);
            Interlocked.Increment(ref inFlight);
            running.Add(Task.Run(async () =>
            {
                try
                {
                    return await SendAsync(client, request, factory, due);
                }
                finally
                {
                    Interlocked.Decrement(ref inFlight);
                }
            }));
        }

        return [.. await Task.WhenAll(running)];
    }
}

/// <summary>One request: latency and time to first byte in Stopwatch ticks.</summary>
internal readonly record struct Sample(long Latency, long Ttfb, bool Ok);

/// <summary>The numbers of one run.</summary>
internal sealed record RunResult(string Label, int Concurrency, int Requests, int Errors, double Seconds, double[] LatencyMs, double[] TtfbMs)
{
    public double Rate { get; init; }

    public double Throughput => Requests / Seconds;

    public double P50 => Percentile(LatencyMs, 0.50);

    public double P99 => Percentile(LatencyMs, 0.99);

    public double TtfbP50 => Percentile(TtfbMs, 0.50);

    public double TtfbP99 => Percentile(TtfbMs, 0.99);

    /// <summary>Pools the runs of one scenario: all latencies together, throughput over their summed time.</summary>
    public static RunResult Merge(string label, int concurrency, IReadOnlyList<RunResult> runs) => new(
        label,
        concurrency,
        runs.Sum(r => r.Requests),
        runs.Sum(r => r.Errors),
        runs.Sum(r => r.Seconds),
        [.. runs.SelectMany(r => r.LatencyMs).Order()],
        [.. runs.SelectMany(r => r.TtfbMs).Order()]);

    public static RunResult From(string label, int concurrency, IEnumerable<Sample> samples, TimeSpan elapsed)
    {
        var all = samples.ToList();
        var ok = all.Where(s => s.Ok).ToList();
        var latency = ok.Select(s => s.Latency * 1000.0 / Stopwatch.Frequency).Order().ToArray();
        var ttfb = ok.Select(s => s.Ttfb * 1000.0 / Stopwatch.Frequency).Order().ToArray();
        return new RunResult(label, concurrency, ok.Count, all.Count - ok.Count, elapsed.TotalSeconds, latency, ttfb);
    }

    public static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[(int)Math.Min(sorted.Length - 1, Math.Round(q * (sorted.Length - 1)))];
}
