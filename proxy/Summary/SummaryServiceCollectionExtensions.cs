using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Hosting;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Summary;

/// <summary>Registers the rolling summary: its options (validated at start) and the background service.</summary>
internal static class SummaryServiceCollectionExtensions
{
    public static IServiceCollection AddMnemoSummary(this IServiceCollection services)
    {
        services.AddOptions<SummaryOptions>().BindConfiguration(SummaryOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SummaryOptions>, SummaryOptionsValidator>();
        services.AddSingleton<SummaryService>();
        services.AddHostedService(static sp => sp.GetRequiredService<SummaryService>());
        return services;
    }
}

/// <summary>Start-up validation of <c>Mnemo:Summary</c>; each message names the key.</summary>
internal sealed class SummaryOptionsValidator(IOptions<StoreOptions> store) : IValidateOptions<SummaryOptions>
{
    public ValidateOptionsResult Validate(string? name, SummaryOptions options)
    {
        if (!options.Enabled)
        {
            return ValidateOptionsResult.Success;
        }

        return new OptionsErrors(SummaryOptions.SectionName)
            .Check(!string.IsNullOrWhiteSpace(options.Model), "Model", "is required when the summary is enabled.")
            .Check(options.Dialect.Length == 0 || DialectLabels.TryParse(options.Dialect, out var d) && d != DialectId.Other, "Dialect",
                "must be empty (the request's), openai-chat, anthropic-messages, openai-responses or ollama-chat.")
            .Check(options.Path.Length == 0 || options.Path.StartsWith('/'), "Path", "must start with '/'.")
            .Check(options.Upstream.Length == 0 || (Uri.TryCreate(options.Upstream, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)),
                "Upstream", "must be empty (Mnemo:Upstream, or the request's destination) or an absolute http:// or https:// URL.")
            .Check(!string.IsNullOrWhiteSpace(options.Prompt), "Prompt", "must not be empty.")
            .Range(options.TriggerTurns, "TriggerTurns", 0, StoreOptions.StoredTurnsLimit)
            .Range(options.TriggerTokens, "TriggerTokens", 0, int.MaxValue)
            .Check(options.TriggerTurns > 0 || options.TriggerTokens > 0, "TriggerTurns", "or Mnemo:Summary:TriggerTokens must be above 0.")
            .Range(options.MaxTokens, "MaxTokens", 16, 1_000_000)
            .Check(options.Credentials != SummaryCredentials.ApiKey || options.ApiKey.Length > 0, "ApiKey", "is required when Credentials is ApiKey.")
            .Range(options.Timeout, "Timeout", TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(30))
            .Range(options.HardMaxStoredTurns, "HardMaxStoredTurns", store.Value.MaxStoredTurns, StoreOptions.StoredTurnsLimit)
            .Range(options.QueueCapacity, "QueueCapacity", 1, 1_000_000)
            .Range(options.MaxTurnsPerCall, "MaxTurnsPerCall", 1, StoreOptions.StoredTurnsLimit)
            .Result();
    }
}
