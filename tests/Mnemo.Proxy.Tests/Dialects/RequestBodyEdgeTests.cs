using System.Text;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Tests.Dialects;

/// <summary>Bodies every dialect's request parser must reject with a 400 rather than throw or guess: found by the property tests.</summary>
public sealed class RequestBodyEdgeTests
{
    private static readonly DialectRegistry s_dialects = new();

    // A role or a property name escaping a lone surrogate is valid JSON syntax but not text: comparing it threw.
    [TestCase("openai-chat", """{"messages":[{"role":"\ud800\u0041","content":"a"}]}""")]
    [TestCase("anthropic-messages", """{"messages":[{"role":"user","\udc00":1,"content":"a"}]}""")]
    [TestCase("ollama-chat", """{"messages":[{"role":"\ud800\u0041","content":"a"}]}""")]
    [TestCase("openai-chat", """{"\ud800":1,"messages":[{"role":"user","content":"a"}]}""")]
    [TestCase("openai-responses", """{"input":[{"role":"\ud800\u0041","content":"a"}]}""")]
    public void ParseRequest_ALoneSurrogateEscapeWhereARoleOrNameIsCompared_IsInvalidNotAnException(string dialect, string body)
    {
        var result = Dialect(dialect).ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, new SplicePlan());

        Assert.That(result.Outcome, Is.EqualTo(ParseOutcome.Invalid));
        Assert.That(result.Error, Is.EqualTo("The request body is not valid JSON."));
    }

    private static Dialect Dialect(string label) => s_dialects.All.Single(d => d.Id.Label() == label);
}
