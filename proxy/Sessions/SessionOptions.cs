namespace Mnemo.Proxy.Sessions;

/// <summary>Where a request's session id comes from (<c>Mnemo:Session</c>).</summary>
public sealed record SessionIdOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Session";

    /// <summary>Request header carrying the session id. A request without it is proxied without memory.</summary>
    public string Header { get; init; } = "X-Session-Id";

    /// <summary>
    /// Whether the session header goes on to the upstream. Off by default: session ids are often user ids, and the
    /// provider has no use for them.
    /// </summary>
    public bool Forward { get; init; }
}

/// <summary>How requests are separated into tenants (<c>Mnemo:Tenancy</c>).</summary>
public sealed record TenancyOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string SectionName = "Mnemo:Tenancy";

    /// <summary>How the tenant is derived. Defaults to <see cref="TenancyMode.ApiKey"/>.</summary>
    public TenancyMode Mode { get; init; } = TenancyMode.ApiKey;

    /// <summary>Trusted request header naming the tenant when <see cref="Mode"/> is <see cref="TenancyMode.Header"/>.</summary>
    public string Header { get; init; } = "X-Tenant-Id";
}

/// <summary>How the tenant part of a session key is derived.</summary>
public enum TenancyMode
{
    /// <summary>A hash of the caller's API key (<c>Authorization</c> bearer token or <c>x-api-key</c>).</summary>
    ApiKey,

    /// <summary>The value of a trusted header set by a gateway in front of Mnemo.</summary>
    Header,

    /// <summary>One shared tenant: session ids alone separate histories.</summary>
    None,
}
