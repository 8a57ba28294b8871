using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>Waits for a master's replicas to receive what it writes, before a test may kill it.</summary>
internal static class Replication
{
    /// <summary>
    /// Writes a probe key on the master and waits (WAIT) until a replica has acknowledged it.
    /// </summary>
    /// <remarks>
    /// A replica that reports <c>master_link_status:up</c> right after a diskless sync may not be receiving the stream yet:
    /// Redis 7.0 starts streaming to it on its next REPLCONF ACK, which it sends once a second ("Waiting for REPLCONF ACK
    /// from slave to enable streaming" in the master's log). A master killed in that second takes everything written
    /// since the sync with it: measured here, every turn of the sessions on that master.
    /// </remarks>
    public static async Task WaitUntilStreamingAsync(IServer master)
    {
        // Sent to this server whatever the key's slot: ExecuteAsync on a server is not routed. The probe key is named in
        // the command text, so a cluster master accepts it only for a slot it serves: find one.
        var key = await ProbeKeyAsync(master);
        await master.ExecuteAsync("SET", key, "1");
        await Eventually.TrueAsync(async () => (long)await master.ExecuteAsync("WAIT", 1, 1000) >= 1, $"a replica of {master.EndPoint} to acknowledge a write", TimeSpan.FromSeconds(10));
        await master.ExecuteAsync("DEL", key);
    }

    private static async Task<string> ProbeKeyAsync(IServer master)
    {
        if (master.ServerType != ServerType.Cluster)
        {
            return "mnemo-test:probe";
        }

        var own = (await master.ClusterNodesAsync())!.Nodes.Single(n => n.IsMyself).Slots;
        for (var i = 0; ; i++)
        {
            var key = $"mnemo-test:probe:{i}";
            var slot = master.Multiplexer.HashSlot(key);
            if (own.Any(r => r.From <= slot && slot <= r.To))
            {
                return key;
            }
        }
    }
}
