using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Mnemo.Proxy.Sessions;

/// <summary>Turns request headers into a <see cref="SessionKey"/>, or says why it cannot.</summary>
internal sealed class SessionResolver
{
    /// <summary>Tenant used when tenancy is off.</summary>
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

    private const string MissingKeyMessage =
        "This proxy keeps session memory per API key (Mnemo:Tenancy:Mode=ApiKey) and the request carries none. Send the " +
        "API key, or, in front of a keyless backend, set Mnemo:Tenancy:Mode to Header (a trusted gateway names the " +
        "tenant) or None (one shared tenant).";

    private const string AmbiguousKeyMessage =
        "The request carries more than one API key (Authorization, x-api-key, api-key): send exactly one.";

    private static readonly string[] s_keyHeaders = [HeaderNames.Authorization, "x-api-key", "api-key"];

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
                switch (TenantFromApiKey(request.Headers, out tenant))
                {
                    case CredentialStatus.Missing:
                        return SessionResolution.Refused(StatusCodes.Status401Unauthorized, "missing_api_key", MissingKeyMessage);
                    case CredentialStatus.Ambiguous:
                        return SessionResolution.Invalid("ambiguous_credentials", AmbiguousKeyMessage);
                }

                break;
        }

        return SessionResolution.Resolved(new SessionKey(tenant, values[0]!));
    }

    /// <summary>
    /// A one-way hash of the caller's credential, so keys in Redis never contain a secret. The credential is the one
    /// API key the request carries, in any of <c>Authorization</c> (bearer or not), <c>x-api-key</c> (Anthropic) or
    /// <c>api-key</c> (Azure OpenAI); the same key in several of them is one key.
    /// </summary>
    internal static CredentialStatus TenantFromApiKey(IHeaderDictionary headers, out string tenant)
    {
        tenant = SharedTenant;
        ReadOnlySpan<char> credential = default;
        foreach (var name in s_keyHeaders)
        {
            var values = headers[name];
            if (values.Count == 0)
            {
                continue;
            }

            // A repeated header, or a value that is a list, names more than one key: which one the upstream bills is
            // its choice, so no tenant can be derived from it safely.
            if (values.Count != 1)
            {
                return CredentialStatus.Ambiguous;
            }

            var value = Credential(values[0]);
            if (value.IsEmpty)
            {
                continue;
            }

            if (value.Contains(','))
            {
                return CredentialStatus.Ambiguous;
            }

            if (credential.IsEmpty)
            {
                credential = value;
            }
            else if (!CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(credential), MemoryMarshal.AsBytes(value)))
            {
                return CredentialStatus.Ambiguous;
            }
        }

        if (credential.IsEmpty)
        {
            return CredentialStatus.Missing;
        }

        var max = Encoding.UTF8.GetMaxByteCount(credential.Length);
        byte[]? rented = null;
        var bytes = max <= 512 ? stackalloc byte[512] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            var written = Encoding.UTF8.GetBytes(credential, bytes);
            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(bytes[..written], hash);
            tenant = Convert.ToHexStringLower(hash[..TenantHashBytes]);
            return CredentialStatus.Found;
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

    private static ReadOnlySpan<char> Credential(string? header)
    {
        var value = header.AsSpan().Trim();
        if (value.StartsWith("Bearer", StringComparison.OrdinalIgnoreCase) && (value.Length == 6 || char.IsWhiteSpace(value[6])))
        {
            value = value[6..].Trim();
        }

        return value;
    }
}

/// <summary>What a request's API-key headers say about its identity.</summary>
internal enum CredentialStatus
{
    Found,
    Missing,

    /// <summary>Several different keys, or one header holding a list.</summary>
    Ambiguous,
}

/// <summary>The result of looking for a session on a request.</summary>
internal readonly struct SessionResolution
{
    private SessionResolution(SessionStatus status, SessionKey? key, string? errorCode, string? errorMessage, int statusCode = StatusCodes.Status400BadRequest)
    {
        Status = status;
        StatusCode = statusCode;
        Key = key;
        ErrorCode = errorCode;
        ErrorMessage = errorMessage;
    }

    public static SessionResolution Absent => new(SessionStatus.Absent, null, null, null);

    public SessionStatus Status { get; }

    /// <summary>The HTTP status to refuse an invalid request with.</summary>
    public int StatusCode { get; }

    public SessionKey? Key { get; }

    public string? ErrorCode { get; }

    /// <summary>Safe to send to the client: it never echoes the offending value.</summary>
    public string? ErrorMessage { get; }

    public static SessionResolution Resolved(SessionKey key) => new(SessionStatus.Resolved, key, null, null);

    public static SessionResolution Invalid(string code, string message) => new(SessionStatus.Invalid, null, code, message);

    public static SessionResolution Refused(int statusCode, string code, string message) =>
        new(SessionStatus.Invalid, null, code, message, statusCode);
}

internal enum SessionStatus
{
    Absent,
    Invalid,
    Resolved,
}
