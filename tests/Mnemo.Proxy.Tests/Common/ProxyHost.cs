using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Mnemo.Proxy.Hosting;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// The real Mnemo application (<c>AddMnemo</c> + <c>MapMnemo</c>, real Kestrel) on two free loopback ports,
/// with its logs captured so tests can check what they contain.
/// </summary>
public sealed class ProxyHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private bool _stopped;

    private ProxyHost(WebApplication app, int proxyPort, int managementPort, CapturedLogs logs)
    {
        _app = app;
        Logs = logs;
        ProxyUrl = new Uri($"http://127.0.0.1:{proxyPort}");
        ManagementUrl = new Uri($"http://127.0.0.1:{managementPort}");
        Client = NewClient(ProxyUrl);
        Management = NewClient(ManagementUrl);
    }

    public Uri ProxyUrl { get; }

    public Uri ManagementUrl { get; }

    /// <summary>Client traffic: talks to the proxy port.</summary>
    public HttpClient Client { get; }

    /// <summary>Talks to the management port.</summary>
    public HttpClient Management { get; }

    public CapturedLogs Logs { get; }

    public IServiceProvider Services => _app.Services;

    /// <param name="redis">A Redis connection string, or null for the embedded store.</param>
    /// <param name="services">Registers test services beside Mnemo's (e.g. a YARP transform that holds a request's completion).</param>
    public static async Task<ProxyHost> StartAsync(
        string upstream, string? redis, IDictionary<string, string?>? settings = null, bool waitUntilReady = true, Action<IServiceCollection>? services = null)
    {
        // A free port can be taken by another process between the probe and the bind: try again on fresh ports.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnFreePortsAsync(upstream, redis, settings, waitUntilReady, services);
            }
            catch (IOException ex) when (attempt < 5 && ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
            {
            }
        }
    }

    private static async Task<ProxyHost> StartOnFreePortsAsync(
        string upstream, string? redis, IDictionary<string, string?>? settings, bool waitUntilReady, Action<IServiceCollection>? services)
    {
        var proxyPort = Ports.Free();
        var managementPort = Ports.Free();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = "Production",
            ContentRootPath = AppContext.BaseDirectory,
        });
        var configuration = new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Proxy:Url"] = $"http://127.0.0.1:{proxyPort}",
            ["Kestrel:Endpoints:Management:Url"] = $"http://127.0.0.1:{managementPort}",
            ["Mnemo:Upstream"] = upstream,
            ["ConnectionStrings:Redis"] = redis ?? "",
            ["Mnemo:ShutdownTimeout"] = "00:00:10",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            configuration[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(configuration);
        var logs = new CapturedLogs();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.AddMnemo();
        services?.Invoke(builder.Services);
        var app = builder.Build();
        app.MapMnemo();
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        var host = new ProxyHost(app, proxyPort, managementPort, logs);
        if (redis is not null && waitUntilReady)
        {
            await host.WaitUntilReadyAsync();
        }

        return host;
    }

    public T Service<T>()
        where T : notnull => _app.Services.GetRequiredService<T>();

    public async Task WaitUntilReadyAsync()
    {
        await Eventually.TrueAsync(
            async () => (await Management.GetAsync("/healthz/ready")).IsSuccessStatusCode,
            "the proxy to report ready");
    }

    /// <summary>A Chat Completions request with the headers a client would send.</summary>
    public static HttpRequestMessage Chat(string body, string? session = null, string apiKey = "sk-test-key", string path = "/v1/chat/completions")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        if (session is not null)
        {
            request.Headers.Add("X-Session-Id", session);
        }

        return request;
    }

    public async Task StopAsync()
    {
        if (!_stopped)
        {
            _stopped = true;
            await _app.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Client.Dispose();
        Management.Dispose();
        await _app.DisposeAsync();
    }

    private static HttpClient NewClient(Uri baseAddress) =>
        new(new SocketsHttpHandler { UseProxy = false, AutomaticDecompression = System.Net.DecompressionMethods.None, PooledConnectionLifetime = TimeSpan.FromMinutes(1) })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
}

/// <summary>Every log line the application writes, formatted, with exception text.</summary>
public sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    public string All => string.Join('\n', _lines);

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var structured = state is IEnumerable<KeyValuePair<string, object?>> pairs
                ? string.Join(' ', pairs.Select(p => $"{p.Key}={p.Value}"))
                : "";
            lines.Enqueue($"{logLevel} {category}[{eventId.Id}] {formatter(state, exception)} {structured} {exception}");
        }
    }
}
