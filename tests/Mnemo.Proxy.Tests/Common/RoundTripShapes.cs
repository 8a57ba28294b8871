namespace Mnemo.Proxy.Tests.Common;

/// <summary>What a memory request sends to Redis, as <see cref="RoundTrip.ToString"/> shows it.</summary>
internal static class RoundTripShapes
{
    /// <summary>A history read: the meta fields (summary, generation), the window and the length, with the expiry refreshes, in one batch.</summary>
    public const string Read = "HMGET+LRANGE+LLEN+EXPIRE+EXPIRE";

    /// <summary>A turn's write: one call of the append script.</summary>
    public const string Write = "EVALSHA";

    /// <summary>
    /// The round trips of the <paramref name="turn"/>th request of a session on one replica, each sent after the one
    /// before was written: the first reads Redis; from then on the replica's session cache holds the session (its own
    /// writes update it), so a request only writes.
    /// </summary>
    public static string[] OfTurn(int turn) => turn == 1 ? [Read, Write] : [Write];
}
