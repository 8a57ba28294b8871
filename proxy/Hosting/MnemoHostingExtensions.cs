using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.Admin;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Forwarding;
using Mnemo.Proxy.Health;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Resilience;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Summary;
using Mnemo.Proxy.Tokens;
using Mnemo.Proxy.WriteBack;
using Prometheus;
using StackExchange.Redis;

namespace Mnemo.Proxy.Hosting;

/// <summary>Wires Mnemo into an ASP.NET Core application: <c>builder.AddMnemo()</c>, then <c>app.MapMnemo()</c>.</summary>
public static class MnemoHostingExtensions
{
    /// <summary>The connection string naming Redis; empty selects the embedded in-process store.</summary>
    public const string RedisConnectionStringName = "Redis";

    /// <summary>Adds Mnemo's configuration defaults, Kestrel endpoints and services.</summary>
    public static WebApplicationBuilder AddMnemo(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = MnemoDefaults.Configuration });
        builder.WebHost.ConfigureKestrel((context, kestrel) =>
        {
            kestrel.AddServerHeader = false;
            // Kestrel reads endpoints from configuration but not its limits (dotnet/aspnetcore#4765): bind the scalar
            // ones, so Kestrel:Limits:MaxRequestBodySize and friends work as the README says.
            context.Configuration.GetSection("Kestrel:Limits").Bind(kestrel.Limits);
            kestrel.Configure(context.Configuration.GetSection("Kestrel"))
                .Endpoint(ManagementEndpoint.Name, endpoint => endpoint.ListenOptions.Use(ManagementEndpoint.Tag));
        });
        builder.Services.AddMnemo(builder.Configuration);
        return builder;
    }

    /// <summary>Registers Mnemo's services; the history store is chosen by <c>ConnectionStrings:Redis</c>.</summary>
    public static IServiceCollection AddMnemo(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<OptionsValidators>();
        AddOptions<ForwardingOptions>(services, ForwardingOptions.SectionName);
        AddOptions<HostingOptions>(services, HostingOptions.SectionName);
        AddOptions<SessionIdOptions>(services, SessionIdOptions.SectionName);
        AddOptions<TenancyOptions>(services, TenancyOptions.SectionName);
        AddOptions<MemoryOptions>(services, MemoryOptions.SectionName);
        AddOptions<StoreOptions>(services, StoreOptions.SectionName);
        AddOptions<RedisResilienceOptions>(services, RedisResilienceOptions.SectionName);
        AddOptions<WriteBackOptions>(services, WriteBackOptions.SectionName);
        services.AddOptions<AdminOptions>().BindConfiguration(AdminOptions.SectionName).ValidateOnStart();
        services.AddOptions<PricingOptions>().BindConfiguration(PricingOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AdminOptions>, AdminOptionsValidator>();
        services.AddSingleton<IValidateOptions<PricingOptions>, AdminOptionsValidator>();
        services.AddSingleton<AdminApi>();
        services.AddOptions<HostOptions>().Configure<IOptions<HostingOptions>>((host, mnemo) => host.ShutdownTimeout = mnemo.Value.ShutdownTimeout);

        services.AddSingleton<MnemoMetrics>();
        services.AddSingleton<SessionResolver>();
        services.AddSingleton<DialectRegistry>();
        // Cross-dialect conversions of stored turns (immutable, keyed by turn ids), in memory only, bounded in size.
        services.AddMemoryCache(cache => cache.SizeLimit = 64L * 1024 * 1024);
        services.AddHybridCache(cache => cache.MaximumPayloadBytes = 4 * 1024 * 1024);
        services.AddSingleton(provider => new Converter(
            provider.GetRequiredService<DialectRegistry>(), provider.GetRequiredService<MnemoMetrics>(), provider.GetRequiredService<HybridCache>()));
        services.AddSingleton<ExchangeTelemetry>();
        services.AddSingleton<TurnCapture>();
        services.AddSingleton<RedisPipelines>();
        // The session cache is on with Redis unless Mnemo:Cache:Enabled is false (decided here: it is a service or none).
        AddOptions<CacheOptions>(services, CacheOptions.SectionName);
        services.AddMnemoHistory(
            configuration.GetConnectionString(RedisConnectionStringName),
            configuration.GetSection(CacheOptions.SectionName).GetValue(nameof(CacheOptions.Enabled), defaultValue: true));
        services.AddSingleton<WriteBackQueue>();
        services.AddSingleton<WriteBackService>();
        services.AddOptions<TokenOptions>().BindConfiguration(TokenOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TokenOptions>, TokenOptionsValidator>();
        services.AddSingleton<TokenCounter>();
        services.AddHostedService(static sp => sp.GetRequiredService<WriteBackService>());
        services.AddMnemoSummary();

        // YARP's session affinity wants data protection; a sidecar keeps no keys (and its root filesystem is read-only).
        services.AddDataProtection().UseEphemeralDataProtectionProvider();
        services.AddReverseProxy()
            .AddMnemoProxyConfig(configuration)
            .AddTransforms<RouteMemory>()
            .AddTransforms<ResponseTee>();
        return services;
    }

    /// <summary>Maps the management endpoints (management port only) and the proxy (every other port).</summary>
    public static WebApplication MapMnemo(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var metrics = app.Services.GetRequiredService<MnemoMetrics>();
        if (app.Services.GetService<System.Diagnostics.DiagnosticListener>() is { } listener)
        {
            app.Lifetime.ApplicationStopped.Register(KestrelRejects.Subscribe(listener, metrics).Dispose);
        }

        app.MapWhen(ManagementEndpoint.IsManagement, management =>
        {
            management.UseMetricServer(settings => settings.Registry = metrics.Registry, "/metrics");
            management.UseMnemoHealth();
            var admin = management.ApplicationServices.GetRequiredService<AdminApi>();
            management.Use(next => context => AdminApi.IsAdminPath(context) ? admin.HandleAsync(context) : next(context));
            management.Run(static context =>
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            });
        });

        app.UseRouting();
        app.MapReverseProxy(proxy =>
        {
            proxy.UseMiddleware<SessionMemoryMiddleware>();
            proxy.UseSessionAffinity();
            proxy.UseLoadBalancing();
            proxy.UsePassiveHealthChecks();
        });

        if (app.Services.GetRequiredService<IHistoryStore>() is InMemoryHistoryStore)
        {
            Log.EmbeddedStore(app.Logger);
        }

        return app;
    }

    private static void AddOptions<T>(IServiceCollection services, string section)
        where T : class
    {
        services.AddOptions<T>().BindConfiguration(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<T>>(static sp => (IValidateOptions<T>)(object)sp.GetRequiredService<OptionsValidators>());
    }

    private static IServiceCollection AddMnemoHistory(this IServiceCollection services, string? connectionString, bool cacheEnabled)
    {
        services.AddSingleton<FailOpenReader>();
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            services.AddSingleton<InMemoryHistoryStore>();
            services.AddSingleton<IHistoryStore>(static sp => sp.GetRequiredService<InMemoryHistoryStore>());
            return services;
        }

        ConfigurationOptions redis;
        try
        {
            redis = ConfigurationOptions.Parse(connectionString);
        }
        catch (Exception ex) when (ex is ArgumentException or RedisException or FormatException)
        {
            // The message of the parser names the bad keyword, never the password.
            throw new OptionsValidationException(
                "ConnectionStrings:" + RedisConnectionStringName,
                typeof(ConfigurationOptions),
                [$"ConnectionStrings:{RedisConnectionStringName} is not a valid StackExchange.Redis configuration string: {ex.Message}"]);
        }

        services.AddSingleton(sp => new RedisConnection(redis, sp.GetRequiredService<ILogger<RedisConnection>>()));
        services.AddHostedService(static sp => sp.GetRequiredService<RedisConnection>());
        services.AddSingleton<RedisHistoryStore>();
        services.AddSingleton<IHistoryStore>(static sp => sp.GetRequiredService<RedisHistoryStore>());
        if (cacheEnabled)
        {
            services.AddSingleton<SessionCache>();
            services.AddHostedService(static sp => sp.GetRequiredService<SessionCache>());
        }

        return services;
    }
}
