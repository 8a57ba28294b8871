using Microsoft.Extensions.Options;

namespace Mnemo.Proxy.Tokens;

/// <summary>Start-up validation of <c>Mnemo:Tokens</c>: only the embedded encodings can be named.</summary>
internal sealed class TokenOptionsValidator : IValidateOptions<TokenOptions>
{
    public ValidateOptionsResult Validate(string? name, TokenOptions options)
    {
        if (!string.IsNullOrEmpty(options.Encoding) && !TokenCounter.IsKnownEncoding(options.Encoding))
        {
            return ValidateOptionsResult.Fail($"{TokenOptions.SectionName}:Encoding must be {TokenCounter.O200kBase} or {TokenCounter.Cl100kBase} (or empty: by model).");
        }

        return TokenCounter.IsKnownEncoding(options.Fallback)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"{TokenOptions.SectionName}:Fallback must be {TokenCounter.O200kBase} or {TokenCounter.Cl100kBase}.");
    }
}
