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
        Assert.That(result.Error, Does.Contain("half a surrogate pair"));
    }

    // We would splice into one array while the upstream may read the other (most JSON parsers keep the last).
    [TestCase("openai-chat", """{"messages":[{"role":"user","content":"a"}],"model":"m","messages":[{"role":"user","content":"b"}]}""", "messages")]
    [TestCase("anthropic-messages", """{"messages":[{"role":"user","content":"a"}],"max_tokens":9,"mess\u0061ges":[]}""", "messages")]
    [TestCase("ollama-chat", """{"messages":[],"messages":[{"role":"user","content":"b"}]}""", "messages")]
    [TestCase("openai-responses", """{"input":"a","input":[{"role":"user","content":"b"}]}""", "input")]
    // We would record one format while the upstream answers in the other.
    [TestCase("openai-chat", """{"stream":false,"messages":[{"role":"user","content":"a"}],"stream":true}""", "stream")]
    [TestCase("anthropic-messages", """{"stream":true,"messages":[{"role":"user","content":"a"}],"stream":true}""", "stream")]
    [TestCase("ollama-chat", """{"messages":[{"role":"user","content":"a"}],"stream":false,"str\u0065am":true}""", "stream")]
    [TestCase("openai-responses", """{"stream":true,"input":"a","stream":false}""", "stream")]
    public void ParseRequest_ThePropertySplicedIntoOrStreamTwice_IsInvalidNamingIt(string dialect, string body, string property)
    {
        foreach (var fullHistory in (bool[])[false, true])
        {
            var result = Dialect(dialect).ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory, new SplicePlan());

            Assert.That(result.Outcome, Is.EqualTo(ParseOutcome.Invalid));
            Assert.That(result.Error, Is.EqualTo($"The request body has more than one '{property}' property."));
        }
    }

    [Test]
    public void ParseRequest_EachPropertyOnce_IsStillSpliced()
    {
        foreach (var (dialect, body) in new[]
        {
            ("openai-chat", """{"stream":true,"messages":[{"role":"user","content":"a"}],"model":"m"}"""),
            ("anthropic-messages", """{"stream":false,"max_tokens":9,"messages":[{"role":"user","content":"a"}]}"""),
            ("ollama-chat", """{"messages":[{"role":"user","content":"a"}],"stream":false}"""),
            ("openai-responses", """{"stream":true,"input":"a"}"""),
        })
        {
            Assert.That(Dialect(dialect).ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, new SplicePlan()), Is.EqualTo(ParseResult.Splice), dialect);
        }
    }

    [TestCase("[]")]
    [TestCase("""[{"role":"user","content":"a"}]""")]
    [TestCase("\"messages\"")]
    [TestCase("42")]
    [TestCase("null")]
    [TestCase("true")]
    [TestCase("")]
    public void ParseRequest_ATopLevelValueThatIsNotAnObject_IsInvalid(string body)
    {
        foreach (var dialect in s_dialects.All)
        {
            var result = dialect.ParseRequest(Encoding.UTF8.GetBytes(body), fullHistory: false, new SplicePlan());

            Assert.That(result.Outcome, Is.EqualTo(ParseOutcome.Invalid), dialect.Id.Label());
            Assert.That(result.Error, Is.EqualTo(body.Length == 0 ? "The request body is not valid JSON." : "The request body must be a JSON object."), dialect.Id.Label());
        }
    }

    private static Dialect Dialect(string label) => s_dialects.All.Single(d => d.Id.Label() == label);
}
