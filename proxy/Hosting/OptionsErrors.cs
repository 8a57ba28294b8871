using Microsoft.Extensions.Options;

namespace Mnemo.Proxy.Hosting;

/// <summary>Collects validation failures as "key: problem" so a bad setting fails start-up naming the key to fix.</summary>
internal sealed class OptionsErrors(string section)
{
    private List<string>? _errors;

    public OptionsErrors Check(bool ok, string key, string problem)
    {
        if (!ok)
        {
            (_errors ??= []).Add($"{section}:{key} {problem}");
        }

        return this;
    }

    public OptionsErrors Range(TimeSpan value, string key, TimeSpan min, TimeSpan max) =>
        Check(value >= min && value <= max, key, $"must be between {min} and {max} (was {value}).");

    public OptionsErrors Range(int value, string key, int min, int max) =>
        Check(value >= min && value <= max, key, $"must be between {min} and {max} (was {value}).");

    public OptionsErrors HeaderName(string? value, string key) =>
        Check(IsToken(value), key, "must be a valid HTTP header name.");

    public ValidateOptionsResult Result() => _errors is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(_errors);

    private static bool IsToken(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return false;
        }

        foreach (var c in value)
        {
            if (c > 0x7e || c <= 0x20 || "\"(),/:;<=>?@[\\]{}".Contains(c, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }
}
