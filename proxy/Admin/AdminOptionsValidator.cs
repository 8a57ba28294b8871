using Microsoft.Extensions.Options;

namespace Mnemo.Proxy.Admin;

/// <summary>Refuses to start with admin or pricing settings that cannot work, naming the key.</summary>
internal sealed class AdminOptionsValidator : IValidateOptions<AdminOptions>, IValidateOptions<PricingOptions>
{
    public ValidateOptionsResult Validate(string? name, AdminOptions options)
    {
        var errors = new List<string>();
        if (options.Enabled && options.Token!.Trim().Length < 16)
        {
            errors.Add("Mnemo:Admin:Token must be at least 16 characters (a random secret, e.g. openssl rand -hex 32).");
        }

        if (options.ClockSkew < TimeSpan.Zero)
        {
            errors.Add("Mnemo:Admin:ClockSkew must not be negative.");
        }

        if (options.TombstoneTtl <= options.ClockSkew)
        {
            errors.Add("Mnemo:Admin:TombstoneTtl must be longer than Mnemo:Admin:ClockSkew.");
        }

        if (options.MaxPageSize < 1)
        {
            errors.Add("Mnemo:Admin:MaxPageSize must be at least 1.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    public ValidateOptionsResult Validate(string? name, PricingOptions options)
    {
        var errors = new List<string>();
        for (var i = 0; i < options.Models.Count; i++)
        {
            var price = options.Models[i];
            if (string.IsNullOrWhiteSpace(price.Model))
            {
                errors.Add($"Mnemo:Pricing:Models:{i}:Model is empty.");
            }

            if (price.Input < 0 || price.Output < 0 || price.CacheRead < 0 || price.CacheWrite < 0)
            {
                errors.Add($"Mnemo:Pricing:Models:{i}: prices must not be negative.");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
