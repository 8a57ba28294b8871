namespace Mnemo.Proxy.Sessions;

/// <summary>Identifies one conversation: a tenant and a client-chosen session id.</summary>
/// <remarks>Neither part is ever logged: the tenant is derived from an API key and the id is client data.</remarks>
internal sealed class SessionKey : IEquatable<SessionKey>
{
    public SessionKey(string tenant, string id)
    {
        Tenant = tenant;
        Id = id;
        Slot = string.Concat(tenant, ":", id);
    }

    public string Tenant { get; }

    public string Id { get; }

    /// <summary><c>tenant:session</c>: the Redis hash tag content and the in-process dictionary key.</summary>
    public string Slot { get; }

    public bool Equals(SessionKey? other) => other is not null && string.Equals(Slot, other.Slot, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as SessionKey);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Slot);

    // Deliberately not the id: keeps session ids out of logs and exception messages.
    public override string ToString() => "SessionKey";
}
