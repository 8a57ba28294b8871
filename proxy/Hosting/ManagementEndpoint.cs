using Microsoft.AspNetCore.Connections;

namespace Mnemo.Proxy.Hosting;

/// <summary>
/// Marks connections accepted on the Kestrel endpoint named <c>Management</c>. The mark is set by connection middleware,
/// so the split cannot be crossed with a forged Host header, and it holds for any port, including an ephemeral one.
/// </summary>
internal sealed class ManagementEndpoint
{
    public const string Name = "Management";
    public const string ProxyName = "Proxy";

    private static readonly ManagementEndpoint s_mark = new();

    private ManagementEndpoint()
    {
    }

    public static ConnectionDelegate Tag(ConnectionDelegate next) => connection =>
    {
        connection.Features.Set(s_mark);
        return next(connection);
    };

    public static bool IsManagement(HttpContext context) => context.Features.Get<ManagementEndpoint>() is not null;
}
