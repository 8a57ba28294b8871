using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Tests.Common;
using Mnemo.Proxy.WriteBack;

namespace Mnemo.Proxy.Tests.WriteBack;

public sealed class PendingTurnsTests
{
    private static readonly SessionKey s_a = new("t", "a");
    private static readonly SessionKey s_b = new("t", "b");

    [Test]
    public void Snapshot_IsPerSession_InArrivalOrder_AndUnaffectedByLaterChanges()
    {
        var pending = new PendingTurns();
        var first = Turns.Make(s_a, "1");
        var second = Turns.Make(s_a, "2");
        pending.Add(first);
        pending.Add(Turns.Make(s_b, "x"));
        pending.Add(second);

        var snapshot = pending.Snapshot(s_a);
        pending.Remove(first);

        Assert.That(snapshot, Is.EqualTo(new[] { first, second }));
        Assert.That(pending.Snapshot(s_a), Is.EqualTo(new[] { second }));
        Assert.That(pending.Snapshot(s_b), Has.Length.EqualTo(1));
    }

    [Test]
    public void Remove_LastTurnOfASession_ForgetsTheSession()
    {
        var pending = new PendingTurns();
        var turn = Turns.Make(s_a, "1");
        pending.Add(turn);
        pending.Remove(turn);
        pending.Remove(turn);
        Assert.That(pending.SessionCount, Is.Zero);
        Assert.That(pending.Snapshot(s_a), Is.Empty);
    }
}
