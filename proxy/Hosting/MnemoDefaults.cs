namespace Mnemo.Proxy.Hosting;

/// <summary>Configuration defaults, added beneath every other source so any of them overrides these.</summary>
internal static class MnemoDefaults
{
    public static readonly Dictionary<string, string?> Configuration = new(StringComparer.OrdinalIgnoreCase)
    {
        ["Kestrel:Endpoints:Proxy:Url"] = "http://0.0.0.0:8080",
        ["Kestrel:Endpoints:Management:Url"] = "http://0.0.0.0:9090",
        ["Logging:LogLevel:Default"] = "Information",
        // Request logging at Information would write URLs (query strings can carry keys) for every request.
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        // Held there even when Microsoft.AspNetCore is turned up to debug something: its request lines carry the URL,
        // and admin URLs name a session (/admin/v1/tenants/{tenant}/sessions/{session}).
        ["Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics"] = "Warning",
        ["Logging:LogLevel:Yarp"] = "Warning",
        ["Logging:LogLevel:Polly"] = "Warning",
        // YARP brings in data protection, whose key ring warns at every start that its keys are ephemeral; Mnemo
        // protects no data with it, so the warning would only send an SRE looking for a problem that is not there.
        ["Logging:LogLevel:Microsoft.AspNetCore.DataProtection"] = "Error",
    };
}
