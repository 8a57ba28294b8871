using Microsoft.Extensions.Options;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.Forwarding;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Resilience;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.WriteBack;

namespace Mnemo.Proxy.Hosting;

/// <summary>Start-up validation of every Mnemo options section; each message names the configuration key.</summary>
internal sealed class OptionsValidators(IConfiguration configuration) :
    IValidateOptions<ForwardingOptions>,
    IValidateOptions<HostingOptions>,
    IValidateOptions<SessionIdOptions>,
    IValidateOptions<TenancyOptions>,
    IValidateOptions<MemoryOptions>,
    IValidateOptions<StoreOptions>,
    IValidateOptions<RedisResilienceOptions>,
    IValidateOptions<WriteBackOptions>,
    IValidateOptions<CacheOptions>
{
    private static readonly TimeSpan s_day = TimeSpan.FromDays(1);

    public ValidateOptionsResult Validate(string? name, ForwardingOptions options)
    {
        var generated = !configuration.GetSection(ProxyConfig.ReverseProxySection).Exists();
        return new OptionsErrors(ForwardingOptions.SectionName)
            .Check(
                !generated || (Uri.TryCreate(options.Upstream, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)),
                "Upstream",
                "must be an absolute http:// or https:// URL.")
            .Range(options.UpstreamTimeout, "UpstreamTimeout", TimeSpan.FromSeconds(1), s_day)
            .Result();
    }

    public ValidateOptionsResult Validate(string? name, HostingOptions options) =>
        new OptionsErrors(HostingOptions.SectionName)
            .Range(options.ShutdownTimeout, "ShutdownTimeout", TimeSpan.Zero, TimeSpan.FromHours(1))
            .Result();

    public ValidateOptionsResult Validate(string? name, SessionIdOptions options) =>
        new OptionsErrors(SessionIdOptions.SectionName).HeaderName(options.Header, "Header").Result();

    public ValidateOptionsResult Validate(string? name, TenancyOptions options) =>
        new OptionsErrors(TenancyOptions.SectionName)
            .Check(Enum.IsDefined(options.Mode), "Mode", "must be ApiKey, Header or None.")
            .Check(options.Mode != TenancyMode.Header || !string.IsNullOrEmpty(options.Header), "Header", "is required when Mode is Header.")
            .HeaderName(options.Header, "Header")
            .Result();

    public ValidateOptionsResult Validate(string? name, MemoryOptions options) =>
        new OptionsErrors(MemoryOptions.SectionName)
            .Check(Enum.IsDefined(options.Mode), "Mode", "must be Inject, Record or Off.")
            .Check(Enum.IsDefined(options.Consistency), "Consistency", "must be Replica or Strict.")
            .Range(options.MaxContextTurns, "MaxContextTurns", 0, StoreOptions.StoredTurnsLimit)
            .Check(options.MaxContextTokens >= 0, "MaxContextTokens", "must be 0 (off) or a positive token budget.")
            .Check(options.EvictionFraction is > 0 and <= 1, "EvictionFraction", "must be above 0 and at most 1.")
            .Check(options.MaxContextBytes >= 0, "MaxContextBytes", "must be 0 (off) or a positive number of bytes.")
            .Range(options.MaxTurnBytes, "MaxTurnBytes", 1024, 256 * 1024 * 1024)
            .Result();

    public ValidateOptionsResult Validate(string? name, StoreOptions options) =>
        new OptionsErrors(StoreOptions.SectionName)
            .Range(options.MaxStoredTurns, "MaxStoredTurns", 1, StoreOptions.StoredTurnsLimit)
            .Range(options.Ttl, "Ttl", TimeSpan.FromSeconds(1), TimeSpan.FromDays(3650))
            .Result();

    public ValidateOptionsResult Validate(string? name, RedisResilienceOptions options) =>
        new OptionsErrors(RedisResilienceOptions.SectionName)
            .Range(options.ReadTimeout, "ReadTimeout", TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(30))
            .Range(options.WriteTimeout, "WriteTimeout", TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(1))
            .Range(options.WriteRetries, "WriteRetries", 0, 100)
            .Range(options.WriteRetryDelay, "WriteRetryDelay", TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(1))
            .Range(options.WriteRetryMaxDelay, "WriteRetryMaxDelay", options.WriteRetryDelay, TimeSpan.FromMinutes(10))
            .Check(options.BreakerFailureRatio is > 0 and <= 1, "BreakerFailureRatio", "must be above 0 and at most 1.")
            .Range(options.BreakerMinimumThroughput, "BreakerMinimumThroughput", 2, 100_000)
            // Polly's own lower bounds for these two.
            .Range(options.BreakerSamplingDuration, "BreakerSamplingDuration", TimeSpan.FromMilliseconds(500), s_day)
            .Range(options.BreakerBreakDuration, "BreakerBreakDuration", TimeSpan.FromMilliseconds(500), s_day)
            .Result();

    public ValidateOptionsResult Validate(string? name, WriteBackOptions options) =>
        new OptionsErrors(WriteBackOptions.SectionName)
            .Range(options.QueueCapacity, "QueueCapacity", 1, 10_000_000)
            .Check(options.QueueBytes >= 1024, "QueueBytes", $"must be at least 1024 bytes (was {options.QueueBytes}).")
            .Range(options.MaxConcurrentWrites, "MaxConcurrentWrites", 1, 4096)
            .Result();

    public ValidateOptionsResult Validate(string? name, CacheOptions options) =>
        new OptionsErrors(CacheOptions.SectionName)
            .Check(options.SizeLimit >= 1024 * 1024, "SizeLimit", $"must be at least 1048576 bytes (1 MiB) (was {options.SizeLimit}).")
            .Range(options.Ttl, "Ttl", TimeSpan.FromSeconds(1), s_day)
            .Result();
}
