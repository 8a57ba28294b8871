using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.WriteBack;

namespace Mnemo.Proxy.Admin;

/// <summary>
/// <c>/admin/v1/*</c> on the management port: find a key's tenant, list, export and erase sessions. Off (404) unless
/// <see cref="AdminOptions.Token"/> is set; every call needs it as a bearer token (401 without one, 403 with another).
/// </summary>
/// <remarks>
/// Every action writes one audit line (action, a hash of the tenant, a count, the outcome) and nothing else: no session
/// id, no key, no content. Requests are dispatched here, not by endpoint routing, so no route values reach a log either.
/// </remarks>
internal sealed partial class AdminApi
{
    public const string PathPrefix = "/admin";
    public const string ApiKeyHeader = "X-Mnemo-Api-Key";

    private static readonly JsonWriterOptions s_json = new() { Indented = false };

    private readonly AdminOptions _options;
    private readonly byte[]? _tokenHash;
    private readonly IHistoryStore _store;
    private readonly WriteBackService _writer;
    private readonly SessionCache? _cache;
    private readonly TenancyOptions _tenancy;
    private readonly Pricing _pricing;
    private readonly ILogger<AdminApi> _logger;

    public AdminApi(
        IOptions<AdminOptions> options,
        IOptions<PricingOptions> pricing,
        IOptions<TenancyOptions> tenancy,
        IHistoryStore store,
        WriteBackService writer,
        ILogger<AdminApi> logger,
        SessionCache? cache = null)
    {
        _cache = cache;
        _options = options.Value;
        _tokenHash = _options.Enabled ? SHA256.HashData(Encoding.UTF8.GetBytes(_options.Token!)) : null;
        _store = store;
        _writer = writer;
        _tenancy = tenancy.Value;
        _pricing = new Pricing(pricing.Value);
        _logger = logger;
    }

    public static bool IsAdminPath(HttpContext context) =>
        context.Request.Path.StartsWithSegments(PathPrefix, StringComparison.Ordinal);

    public async Task HandleAsync(HttpContext context)
    {
        var response = context.Response;
        response.Headers.CacheControl = "no-store";
        if (_tokenHash is null)
        {
            await ErrorAsync(context, StatusCodes.Status404NotFound, "admin_disabled", "The admin API is off: set Mnemo:Admin:Token to turn it on.").ConfigureAwait(false);
            return;
        }

        if (!await AuthorizeAsync(context).ConfigureAwait(false))
        {
            return;
        }

        var segments = Segments(context.Request.Path);
        var method = context.Request.Method;
        try
        {
            switch (segments)
            {
                case ["v1", "tenant-id"]:
                    if (await AllowedAsync(context, "GET").ConfigureAwait(false))
                    {
                        await TenantIdAsync(context).ConfigureAwait(false);
                    }

                    return;
                case ["v1", "tenants", var tenant, "sessions"]:
                    if (await AllowedAsync(context, "GET").ConfigureAwait(false) && await ValidAsync(context, tenant, null).ConfigureAwait(false))
                    {
                        await ListAsync(context, tenant).ConfigureAwait(false);
                    }

                    return;
                case ["v1", "tenants", var tenant, "sessions", var session]:
                    if (await AllowedAsync(context, "GET", "DELETE").ConfigureAwait(false) && await ValidAsync(context, tenant, session).ConfigureAwait(false))
                    {
                        var key = new SessionKey(tenant, session);
                        await (HttpMethods.IsGet(method) ? ExportAsync(context, key) : EraseAsync(context, key)).ConfigureAwait(false);
                    }

                    return;
                case ["v1", "tenants", var tenant]:
                    if (await AllowedAsync(context, "DELETE").ConfigureAwait(false) && await ValidAsync(context, tenant, null).ConfigureAwait(false))
                    {
                        await EraseTenantAsync(context, tenant).ConfigureAwait(false);
                    }

                    return;
                default:
                    await ErrorAsync(context, StatusCodes.Status404NotFound, "not_found", "No such admin resource.").ConfigureAwait(false);
                    return;
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            Log.Audit(_logger, "aborted", "-", 0, "client_aborted");
        }
        catch (Exception ex) when (ex is not OutOfMemoryException && !response.HasStarted)
        {
            // The type only: a store's message can quote a key, which holds the session id.
            Log.StoreFailed(_logger, ex.GetType().Name);
            await ErrorAsync(context, StatusCodes.Status503ServiceUnavailable, "store_unavailable", "The history store did not answer; try again.").ConfigureAwait(false);
        }
    }

    /// <summary>Bearer token, compared in constant time (as hashes, so the length leaks nothing either).</summary>
    private async Task<bool> AuthorizeAsync(HttpContext context)
    {
        var header = context.Request.Headers.Authorization;
        var value = header.Count == 1 ? header[0].AsSpan().Trim() : default;
        if (value.Length < 7 || !value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            Log.Refused(_logger, StatusCodes.Status401Unauthorized);
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"mnemo-admin\"";
            await ErrorAsync(context, StatusCodes.Status401Unauthorized, "unauthorized", "Send the admin token as Authorization: Bearer <Mnemo:Admin:Token>.").ConfigureAwait(false);
            return false;
        }

        if (!Matches(value[7..].Trim()))
        {
            Log.Refused(_logger, StatusCodes.Status403Forbidden);
            await ErrorAsync(context, StatusCodes.Status403Forbidden, "forbidden", "The admin token is not the one configured.").ConfigureAwait(false);
            return false;
        }

        return true;
    }

    private bool Matches(ReadOnlySpan<char> presented)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var bytes = Encoding.UTF8.GetBytes(presented.ToArray());
        SHA256.HashData(bytes, hash);
        CryptographicOperations.ZeroMemory(bytes);
        return CryptographicOperations.FixedTimeEquals(hash, _tokenHash);
    }

    private static string[] Segments(PathString path) =>
        path.Value is { } value ? value[PathPrefix.Length..].Split('/', StringSplitOptions.RemoveEmptyEntries) : [];

    private static async Task<bool> AllowedAsync(HttpContext context, params string[] methods)
    {
        foreach (var method in methods)
        {
            if (string.Equals(context.Request.Method, method, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        context.Response.Headers.Allow = string.Join(", ", methods);
        await ErrorAsync(context, StatusCodes.Status405MethodNotAllowed, "method_not_allowed", "Allowed: " + string.Join(", ", methods) + ".").ConfigureAwait(false);
        return false;
    }

    private static async Task<bool> ValidAsync(HttpContext context, string tenant, string? session)
    {
        if (!SessionIds.IsValidTenant(tenant))
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "invalid_tenant",
                $"A tenant id is 1 to {SessionIds.MaxTenantLength} characters from A-Z, a-z, 0-9 and . _ @ - (GET /admin/v1/tenant-id gives a key's).").ConfigureAwait(false);
            return false;
        }

        if (session is not null && !SessionIds.IsValidSessionId(session))
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "invalid_session_id",
                $"A session id is 1 to {SessionIds.MaxSessionIdLength} characters from A-Z, a-z, 0-9 and . _ : @ -").ConfigureAwait(false);
            return false;
        }

        return true;
    }

    /// <summary>The tenant a client's API key maps to, hashed exactly as the proxy does; the key only ever in a header.</summary>
    private async Task TenantIdAsync(HttpContext context)
    {
        string tenant;
        switch (_tenancy.Mode)
        {
            case TenancyMode.None:
                tenant = SessionResolver.SharedTenant;
                break;
            case TenancyMode.Header:
                await ErrorAsync(context, StatusCodes.Status400BadRequest, "tenant_from_header",
                    $"Mnemo:Tenancy:Mode is Header: the tenant id is the value of the {_tenancy.Header} header the gateway sends, not derived from a key.").ConfigureAwait(false);
                return;
            default:
                var key = context.Request.Headers[ApiKeyHeader];
                if (key.Count == 0)
                {
                    await ErrorAsync(context, StatusCodes.Status400BadRequest, "missing_api_key", $"Send the client's API key in the {ApiKeyHeader} header.").ConfigureAwait(false);
                    return;
                }

                var headers = new HeaderDictionary { ["x-api-key"] = key };
                switch (SessionResolver.TenantFromApiKey(headers, out tenant))
                {
                    case CredentialStatus.Missing:
                        await ErrorAsync(context, StatusCodes.Status400BadRequest, "missing_api_key", $"The {ApiKeyHeader} header is empty.").ConfigureAwait(false);
                        return;
                    case CredentialStatus.Ambiguous:
                        await ErrorAsync(context, StatusCodes.Status400BadRequest, "ambiguous_credentials", $"Send exactly one key in one {ApiKeyHeader} header.").ConfigureAwait(false);
                        return;
                }

                break;
        }

        Audit("tenant_id", tenant, 1, "ok");
        await JsonAsync(context, StatusCodes.Status200OK, tenant, static (writer, tenant) => writer.WriteString("tenant"u8, tenant)).ConfigureAwait(false);
    }

    private async Task ListAsync(HttpContext context, string tenant)
    {
        var query = context.Request.Query;
        var limit = 100;
        if (query["limit"] is { Count: > 0 } given
            && (!int.TryParse(given[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > _options.MaxPageSize))
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "invalid_limit", $"limit is a number from 1 to {_options.MaxPageSize}.").ConfigureAwait(false);
            return;
        }

        var cursor = query["cursor"] is { Count: > 0 } c && !string.IsNullOrEmpty(c[0]) ? c[0] : null;
        SessionPage page;
        try
        {
            page = await _store.ListAsync(tenant, cursor, limit, context.RequestAborted).ConfigureAwait(false);
        }
        catch (FormatException)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "invalid_cursor", "The cursor is not one this API returned.").ConfigureAwait(false);
            return;
        }

        Audit("list_sessions", tenant, page.Sessions.Count, "ok");
        await JsonAsync(context, StatusCodes.Status200OK, (tenant, page), static (writer, state) =>
        {
            writer.WriteString("tenant"u8, state.tenant);
            writer.WriteStartArray("sessions"u8);
            foreach (var session in state.page.Sessions)
            {
                writer.WriteStartObject();
                writer.WriteString("session"u8, session.Session);
                writer.WriteNumber("turns"u8, session.StoredTurns);
                writer.WriteNumber("turns_written"u8, session.WrittenTurns);
                WriteTime(writer, "last_activity"u8, session.LastTurnMs);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            if (state.page.NextCursor is { } next)
            {
                writer.WriteString("next_cursor"u8, next);
            }
            else
            {
                writer.WriteNull("next_cursor"u8);
            }
        }).ConfigureAwait(false);
    }

    private async Task ExportAsync(HttpContext context, SessionKey session)
    {
        var record = await _store.ExportAsync(session, context.RequestAborted).ConfigureAwait(false);
        if (record is null)
        {
            Audit("export_session", session.Tenant, 0, "not_found");
            await ErrorAsync(context, StatusCodes.Status404NotFound, "session_not_found", "The store holds nothing for this session (never written, expired or erased).").ConfigureAwait(false);
            return;
        }

        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        await SessionExport.WriteAsync(context.Response.BodyWriter, session, record, _pricing, context.RequestAborted).ConfigureAwait(false);
        Audit("export_session", session.Tenant, record.Elements.Count, "ok");
    }

    private async Task EraseAsync(HttpContext context, SessionKey session)
    {
        // The local turns first: from now on no read on this replica shows them and the writer lets them go; one already
        // on its way to Redis is refused by the tombstone the erasure leaves there.
        var match = (string slot) => string.Equals(slot, session.Slot, StringComparison.Ordinal);
        var queued = _writer.Erase(match);
        var erased = await _store.EraseAsync(session, context.RequestAborted).ConfigureAwait(false);
        // Then this replica's cached copy, at once (every other replica drops its copy on the erasure's announcement).
        _cache?.Erase(match);
        Audit("erase_session", session.Tenant, erased ? 1 : 0, "ok");
        await JsonAsync(context, StatusCodes.Status200OK, (session, erased, queued), static (writer, state) =>
        {
            writer.WriteString("tenant"u8, state.session.Tenant);
            writer.WriteString("session"u8, state.session.Id);
            writer.WriteBoolean("erased"u8, state.erased);
            writer.WriteNumber("queued_turns_dropped"u8, state.queued);
        }).ConfigureAwait(false);
    }

    private async Task EraseTenantAsync(HttpContext context, string tenant)
    {
        var started = Stopwatch.GetTimestamp();
        var prefix = tenant + ":";
        var match = (string slot) => slot.StartsWith(prefix, StringComparison.Ordinal);
        var queued = _writer.Erase(match);
        var result = await _store.EraseTenantAsync(tenant, context.RequestAborted).ConfigureAwait(false);
        _cache?.Erase(match);
        var elapsed = Stopwatch.GetElapsedTime(started);
        Audit("erase_tenant", tenant, result.Sessions, "ok");
        await JsonAsync(context, StatusCodes.Status200OK, (tenant, result, queued, elapsed), static (writer, state) =>
        {
            writer.WriteString("tenant"u8, state.tenant);
            writer.WriteNumber("sessions_erased"u8, state.result.Sessions);
            writer.WriteNumber("queued_turns_dropped"u8, state.queued);
            writer.WriteNumber("elapsed_ms"u8, Math.Round(state.elapsed.TotalMilliseconds, 1));
        }).ConfigureAwait(false);
    }

    private void Audit(string action, string tenant, long count, string outcome)
    {
        if (_logger.IsEnabled(LogLevel.Information))
        {
#pragma warning disable CA1873 // Guarded by IsEnabled just above.
            Log.Audit(_logger, action, TenantHash(tenant), count, outcome);
#pragma warning restore CA1873
        }
    }

    /// <summary>What the audit line names a tenant by: 8 bytes of SHA-256 of its id, enough to correlate, not to read.</summary>
    internal static string TenantHash(string tenant)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(tenant), hash);
        return Convert.ToHexStringLower(hash[..8]);
    }

    internal static void WriteTime(Utf8JsonWriter writer, ReadOnlySpan<byte> name, long unixMs)
    {
        if (unixMs > 0)
        {
            writer.WriteString(name, DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture));
        }
        else
        {
            writer.WriteNull(name);
        }
    }

    private static Task ErrorAsync(HttpContext context, int status, string code, string message) =>
        JsonAsync(context, status, (code, message), static (writer, state) =>
        {
            writer.WriteStartObject("error"u8);
            writer.WriteString("code"u8, state.code);
            writer.WriteString("message"u8, state.message);
            writer.WriteEndObject();
        });

    private static async Task JsonAsync<TState>(HttpContext context, int status, TState state, Action<Utf8JsonWriter, TState> write)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, s_json))
        {
            writer.WriteStartObject();
            write(writer, state);
            writer.WriteEndObject();
        }

        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 900, Level = LogLevel.Information, Message = "Admin {Action}: tenant {TenantHash}, {Count}, {Outcome}.")]
        public static partial void Audit(ILogger logger, string action, string tenantHash, long count, string outcome);

        [LoggerMessage(EventId = 901, Level = LogLevel.Warning, Message = "Admin request refused with {Status}: no or wrong bearer token.")]
        public static partial void Refused(ILogger logger, int status);

        [LoggerMessage(EventId = 902, Level = LogLevel.Error, Message = "Admin request failed: the history store did not answer ({ExceptionType}).")]
        public static partial void StoreFailed(ILogger logger, string exceptionType);
    }
}
