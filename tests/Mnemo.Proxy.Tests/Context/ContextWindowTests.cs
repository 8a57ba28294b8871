using Mnemo.Proxy.Context;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
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
    public void Choose_PendingTurnWhoseIdEndsLikeAStoredOnes_IsStillItsOwnTurn()
    {
        // Turns are matched by the end of their ids first: two ids that share it are still told apart by the whole id.
        var stored = Turns.Make(s_session, "q1", id: "0123456789abcdef0123456789abcdef");
        var pending = Turns.Make(s_session, "q2", id: "fedcba98765432100123456789abcdef");
        Assert.That(stored.View.IdKey, Is.EqualTo(pending.View.IdKey), "the ids share their last eight bytes");
        var context = ContextWindow.Choose([stored.View], [pending], maxTurns: 10, maxTokens: 0);
        Assert.That(Questions(context), Is.EqualTo(new[] { "q1", "q2" }));
    }

    [Test]
    public void Choose_NothingStored_IsEmpty()
    {
        var context = ContextWindow.Choose([], [], maxTurns: 20, maxTokens: 0);
        Assert.That(context.Count, Is.Zero);
        var segments = context.Segments(new Mnemo.Proxy.Dialects.OpenAIChatDialect(), null!, out var count, out _);
        Assert.That(count, Is.Zero);
        Assert.That(Mnemo.Proxy.Dialects.Splice.Length(10, new Mnemo.Proxy.Dialects.SplicePlan(), segments.AsSpan(0, count)), Is.EqualTo(10));
    }

    [Test]
    public void Choose_WindowWouldStartWithAToolResult_LeavesThatTurnOut()
    {
        // The conversation, MaxContextTurns=2: "question → tool call", "tool result → answer", "question 3 → answer", …
        var call = Turn("q1");
        var result = ToolResult("r2");
        var third = Turn("q3");

        Assert.That(Questions(ContextWindow.Choose([call.View, result.View], [], maxTurns: 2, maxTokens: 0)), Is.EqualTo(new[] { "q1", "r2" }),
            "call and result together");
        Assert.That(Questions(ContextWindow.Choose([call.View, result.View, third.View], [], maxTurns: 2, maxTokens: 0)), Is.EqualTo(new[] { "q3" }),
            "the result without its call is left out, and the window is not widened to take the call back");
        Assert.That(Questions(ContextWindow.Choose([call.View, result.View, third.View, Turn("q4").View], [], maxTurns: 2, maxTokens: 0)),
            Is.EqualTo(new[] { "q3", "q4" }));
    }

    [Test]
    public void Choose_CallTrimmedFromTheStore_LeavesItsResultOut()
    {
        StoredTurn[] window = [ToolResult("r2").View, Turn("q3").View];
        Assert.That(Questions(ContextWindow.Choose(window, [], maxTurns: 20, maxTokens: 0)), Is.EqualTo(new[] { "q3" }));
    }

    [Test]
    public void Choose_MultiStepToolLoop_LeavesOutEveryStepWhoseStartIsOut()
    {
        // q1 calls a tool, r2 and r3 answer with more calls, r4 with text.
        StoredTurn[] window = [Turn("q0").View, Turn("q1").View, ToolResult("r2").View, ToolResult("r3").View, ToolResult("r4").View, Turn("q5").View];
        Assert.That(Questions(ContextWindow.Choose(window, [], maxTurns: 4, maxTokens: 0)), Is.EqualTo(new[] { "q5" }));
        Assert.That(Questions(ContextWindow.Choose(window, [], maxTurns: 5, maxTokens: 0)), Is.EqualTo(new[] { "q1", "r2", "r3", "r4", "q5" }));
        Assert.That(Questions(ContextWindow.Choose(window, [], maxTurns: 6, maxTokens: 0)), Is.EqualTo(new[] { "q0", "q1", "r2", "r3", "r4", "q5" }));
    }

    [Test]
    public void Choose_TokenBudgetCutsIntoAToolExchange_LeavesTheResultOut()
    {
        StoredTurn[] window = [Turn("q1", 10).View, ToolResult("r2", 10).View, Turn("q3", 10).View];
        Assert.That(Questions(ContextWindow.Choose(window, [], maxTurns: 10, maxTokens: 25)), Is.EqualTo(new[] { "q3" }));
        Assert.That(Questions(ContextWindow.Choose(window, [], maxTurns: 10, maxTokens: 30)), Is.EqualTo(new[] { "q1", "r2", "q3" }));
    }

    [Test]
    public void Choose_EveryChosenTurnContinuesAnExchange_IsEmpty()
    {
        StoredTurn[] window = [Turn("q1").View, ToolResult("r2").View, ToolResult("r3").View];
        var context = ContextWindow.Choose(window, [], maxTurns: 2, maxTokens: 0);
        Assert.That(context.Count, Is.Zero);
        var segments = context.Segments(new Mnemo.Proxy.Dialects.OpenAIChatDialect(), null!, out var count, out _);
        Assert.That(count, Is.Zero);
        Assert.That(Mnemo.Proxy.Dialects.Splice.Length(10, new Mnemo.Proxy.Dialects.SplicePlan(), segments.AsSpan(0, count)), Is.EqualTo(10),
            "the body is forwarded as sent");
        context.Return(segments);
    }

    [Test]
    public void Choose_PendingToolResult_KeptWithItsStoredCall_LeftOutWithout()
    {
        var call = Turn("q1");
        var result = ToolResult("r2");
        Assert.That(Questions(ContextWindow.Choose([call.View], [result], maxTurns: 2, maxTokens: 0)), Is.EqualTo(new[] { "q1", "r2" }));
        Assert.That(Questions(ContextWindow.Choose([call.View], [result, Turn("q3")], maxTurns: 2, maxTokens: 0)), Is.EqualTo(new[] { "q3" }));
        Assert.That(Questions(ContextWindow.Choose([], [call, result, Turn("q3")], maxTurns: 2, maxTokens: 0)), Is.EqualTo(new[] { "q3" }),
            "the pending turns alone");
        Assert.That(Questions(ContextWindow.Choose([call.View, result.View], [result], maxTurns: 1, maxTokens: 0)), Is.Empty,
            "a pending turn already stored counts once, and still may not open the window");
    }

    private static Turn Turn(string question, int tokens = 10) => Turns.Make(s_session, question, tokens: tokens);

    /// <summary>A turn whose first message is a tool result (its content is what <see cref="Questions"/> reads).</summary>
    private static Turn ToolResult(string result, int tokens = 10)
    {
        var id = TurnCodec.NewId();
        var payload = TurnCodec.Encode(id, 1_700_000_000_000, DialectId.OpenAIChat, tokens, TokenUsage.Unknown, result, static (w, r) =>
        {
            w.WriteStartObject();
            w.WriteString("role", "tool");
            w.WriteString("tool_call_id", "call_1");
            w.WriteString("content", r);
            w.WriteEndObject();
            w.WriteStartObject();
            w.WriteString("role", "assistant");
            w.WriteString("content", "ok");
            w.WriteEndObject();
        }, continuesToolExchange: true);
        Assert.That(TurnCodec.TryRead(payload, out var view), Is.True);
        return new Turn(s_session, id, payload, view);
    }

    private static StoredTurn[] Window(params string[] questions) => questions.Select(q => Turn(q).View).ToArray();

    private static string[] Questions(ContextWindow context) => Turns.Questions(context.Chosen.ToArray());
}
