using System.Buffers;

namespace Mnemo.Proxy.Sessions;

/// <summary>The character rules for session ids and tenant names.</summary>
internal static class SessionIds
{
    public const int MaxSessionIdLength = 128;
    public const int MaxTenantLength = 64;

    private static readonly SearchValues<char> s_sessionChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-");

    // ':' separates tenant from session inside the hash tag, so a tenant may not contain it.
    private static readonly SearchValues<char> s_tenantChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-");

    public static bool IsValidSessionId(ReadOnlySpan<char> value) =>
        value.Length is > 0 and <= MaxSessionIdLength && !value.ContainsAnyExcept(s_sessionChars);

    public static bool IsValidTenant(ReadOnlySpan<char> value) =>
        value.Length is > 0 and <= MaxTenantLength && !value.ContainsAnyExcept(s_tenantChars);
}
