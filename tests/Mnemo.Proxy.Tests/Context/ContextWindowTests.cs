using Mnemo.Proxy.Context;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Context;

public sealed class ContextWindowTests
{
    private static readonly SessionKey s_session = new("t", "s");

    [Test]
    public void Choose_KeepsTheNewestTurnsUpToTheLimit_OldestFirst()
    {
        var window = Window("q1", "q2", "q3", "q4");
        var context = ContextWindow.Choose(window, [], maxTurns: 2, maxTokens: 0);
        Assert.That(context.Count, Is.EqualTo(2));
        Assert.That(Questions(context), Is.EqualTo(new[] { "q3", "q4" }));
    }

    [Test]
    public void Choose_TokenBudget_StopsAtTheFirstTurnThatDoesNotFit()
    {
        StoredTurn[] window = [Turn("q1", 50).View, Turn("q2", 30).View, Turn("q3", 30).View];
        var context = ContextWindow.Choose(window, [], maxTurns: 10, maxTokens: 70);
        Assert.That(Questions(context), Is.EqualTo(new[] { "q2", "q3" }));
    }

    [Test]
    public void Choose_PendingTurns_FollowTheStoredOnes()
    {
        var context = ContextWindow.Choose(Window("q1", "q2"), [Turn("q3"), Turn("q4")], maxTurns: 3, maxTokens: 0);
        Assert.That(Questions(context), Is.EqualTo(new[] { "q2", "q3", "q4" }));
    }

    [Test]
    public void Choose_PendingTurnAlreadyStored_IsNotRepeated()
    {
        var written = Turn("q2");
        StoredTurn[] window = [Turn("q1").View, written.View];
        var context = ContextWindow.Choose(window, [written], maxTurns: 10, maxTokens: 0);
        Assert.That(Questions(context), Is.EqualTo(new[] { "q1", "q2" }));
    }

    [Test]
    public void Choose_NothingStored_IsEmpty()
    {
        var context = ContextWindow.Choose([], [], maxTurns: 20, maxTokens: 0);
        Assert.That(context.Count, Is.Zero);
        var segments = context.Segments(new Mnemo.Proxy.Dialects.OpenAIChatDialect(), null!, out var count);
        Assert.That(count, Is.Zero);
        Assert.That(Mnemo.Proxy.Dialects.Splice.Length(10, new Mnemo.Proxy.Dialects.SplicePlan(), segments.AsSpan(0, count)), Is.EqualTo(10));
    }

    private static Turn Turn(string question, int tokens = 10) => Turns.Make(s_session, question, tokens: tokens);

    private static StoredTurn[] Window(params string[] questions) => questions.Select(q => Turn(q).View).ToArray();

    private static string[] Questions(ContextWindow context) => Turns.Questions(context.Chosen.ToArray());
}
