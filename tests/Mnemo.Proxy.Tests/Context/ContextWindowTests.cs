using System.Text;
using Mnemo.Proxy.Context;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Tests.Common;

namespace Mnemo.Proxy.Tests.Context;

public sealed class HistoryContextTests
{
    private static readonly SessionKey s_session = new("t", "s");

    [Test]
    public void Build_KeepsTheNewestTurnsUpToTheLimit_OldestFirst()
    {
        var window = Window("q1", "q2", "q3", "q4");
        var context = HistoryContext.Build(window, [], maxTurns: 2, maxTokens: 0);
        Assert.That(context.Turns, Is.EqualTo(2));
        Assert.That(Questions(context), Is.EqualTo(new[] { "q3", "q4" }));
    }

    [Test]
    public void Build_TokenBudget_StopsAtTheFirstTurnThatDoesNotFit()
    {
        var window = new HistoryWindow([Turn("q1", 50).View, Turn("q2", 30).View, Turn("q3", 30).View]);
        var context = HistoryContext.Build(window, [], maxTurns: 10, maxTokens: 70);
        Assert.That(Questions(context), Is.EqualTo(new[] { "q2", "q3" }));
    }

    [Test]
    public void Build_PendingTurns_FollowTheStoredOnes()
    {
        var context = HistoryContext.Build(Window("q1", "q2"), [Turn("q3"), Turn("q4")], maxTurns: 3, maxTokens: 0);
        Assert.That(Questions(context), Is.EqualTo(new[] { "q2", "q3", "q4" }));
    }

    [Test]
    public void Build_PendingTurnAlreadyStored_IsNotRepeated()
    {
        var written = Turn("q2");
        var window = new HistoryWindow([Turn("q1").View, written.View]);
        var context = HistoryContext.Build(window, [written], maxTurns: 10, maxTokens: 0);
        Assert.That(Questions(context), Is.EqualTo(new[] { "q1", "q2" }));
    }

    [Test]
    public void Build_NothingStored_IsEmpty()
    {
        var context = HistoryContext.Build(HistoryWindow.Empty, [], maxTurns: 20, maxTokens: 0);
        Assert.That(context.Turns, Is.Zero);
        Assert.That(context.SplicedLength(10, new Mnemo.Proxy.Dialects.ChatRequest()), Is.EqualTo(10));
    }

    private static Turn Turn(string question, int tokens = 10) => Turns.Make(s_session, question, tokens: tokens);

    private static HistoryWindow Window(params string[] questions) => new(questions.Select(q => Turn(q).View).ToArray());

    private static string[] Questions(HistoryContext context) =>
        context.Segments.Take(context.Turns)
            .Select(s => System.Text.Json.JsonDocument.Parse("[" + Encoding.UTF8.GetString(s.Span) + "]").RootElement[0].GetProperty("content").GetString()!)
            .ToArray();
}
