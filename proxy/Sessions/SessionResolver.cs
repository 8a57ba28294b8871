using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Mnemo.Proxy.Sessions;

/// <summary>Turns request headers into a <see cref="SessionKey"/>, or says why it cannot.</summary>
internal sealed class SessionResolver
{
    /// <summary>Tenant used when tenancy is off, or when no API key was sent in ApiKey mode.</summary>
    public const string SharedTenant = "_";

    private const int TenantHashBytes = 16;

    private readonly string _sessionHeader;
    private readonly TenancyMode _tenancy;
    private readonly string _tenantHeader;
    private readonly string _invalidSessionMessage;
    private readonly string _missingTenantMessage;
    private readonly string _invalidTenantMessage;

    public SessionResolver(IOptions<SessionIdOptions> session, IOptions<TenancyOptions> tenancy)
    {
        _sessionHeader = session.Value.Header;
        _tenancy = tenancy.Value.Mode;
        _tenantHeader = tenancy.Value.Header;
        _invalidSessionMessage =
            $"The {_sessionHeader} header must be 1 to {SessionIds.MaxSessionIdLength} characters from A-Z, a-z, 0-9 and . _ : @ -";
        _missingTenantMessage = $"The {_tenantHeader} header is required to use session memory on this proxy.";
        _invalidTenantMessage =
            $"The {_tenantHeader} header must be 1 to {SessionIds.MaxTenantLength} characters from A-Z, a-z, 0-9 and . _ @ -";
    }

    public string SessionHeader => _sessionHeader;

    public SessionResolution Resolve(HttpRequest request)
    {
        var values = request.Headers[_sessionHeader];
        if (values.Count == 0)
        {
            return SessionResolution.Absent;
        }

        // Two values (repeated header or a comma list) would make the session ambiguous.
        if (values.Count != 1 || !SessionIds.IsValidSessionId(values[0]))
        {
            return SessionResolution.Invalid("invalid_session_id", _invalidSessionMessage);
        }

        string tenant;
        switch (_tenancy)
        {
            case TenancyMode.None:
                tenant = SharedTenant;
                break;
            case TenancyMode.Header:
                var tenantValues = request.Headers[_tenantHeader];
                if (tenantValues.Count == 0)
                {
                    return SessionResolution.Invalid("missing_tenant", _missingTenantMessage);
                }

                if (tenantValues.Count != 1 || !SessionIds.IsValidTenant(tenantValues[0]))
                {
                    return SessionResolution.Invalid("invalid_tenant", _invalidTenantMessage);
                }

                tenant = tenantValues[0]!;
                break;
            default:
                tenant = TenantFromApiKey(request.Headers);
                break;
        }

        return SessionResolution.Resolved(new SessionKey(tenant, values[0]!));
    }

    /// <summary>A one-way hash of the caller's credential, so keys in Redis never contain a secret.</summary>
    internal static string TenantFromApiKey(IHeaderDictionary headers)
    {
        var credential = Credential(headers[HeaderNames.Authorization]);
        if (credential.IsEmpty)
        {
            credential = Credential(headers["x-api-key"]);
        }

        if (credential.IsEmpty)
        {
            return SharedTenant;
        }

        var max = Encoding.UTF8.GetMaxByteCount(credential.Length);
        byte[]? rented = null;
        var bytes = max <= 512 ? stackalloc byte[512] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            var written = Encoding.UTF8.GetBytes(credential, bytes);
            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(bytes[..written], hash);
            return Convert.ToHexStringLower(hash[..TenantHashBytes]);
        }
        finally
        {
            if (rented is not null)
            {
                CryptographicOperations.ZeroMemory(rented);
                ArrayPool<byte>.Shared.Return(rented);
            }
            else
            {
                CryptographicOperations.ZeroMemory(bytes);
            }
        }
    }

    private static ReadOnlySpan<char> Credential(StringValues values)
    {
        if (values.Count != 1)
        {
            return default;
        }

        var value = values[0].AsSpan().Trim();
        if (value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            value = value[7..].Trim();
        }

        return value;
    }
}

/// <summary>The result of looking for a session on a request.</summary>
internal readonly struct SessionResolution
{
    private SessionResolution(SessionStatus status, SessionKey? key, string? errorCode, string? errorMessage)
    {
        Status = status;
        Key = key;
        ErrorCode = errorCode;
        ErrorMessage = errorMessage;
    }

    public static SessionResolution Absent => new(SessionStatus.Absent, null, null, null);

    public SessionStatus Status { get; }

    public SessionKey? Key { get; }

    public string? ErrorCode { get; }

    /// <summary>Safe to send to the client: it never echoes the offending value.</summary>
    public string? ErrorMessage { get; }

    public static SessionResolution Resolved(SessionKey key) => new(SessionStatus.Resolved, key, null, null);

    public static SessionResolution Invalid(string code, string message) => new(SessionStatus.Invalid, null, code, message);
}

internal enum SessionStatus
{
    Absent,
    Invalid,
    Resolved,
}
