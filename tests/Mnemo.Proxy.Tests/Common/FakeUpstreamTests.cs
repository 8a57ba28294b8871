using System.Net;
using System.Text;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>The fake upstream's own provider checks, over HTTP: what a test sees when it forwards an invalid conversation.</summary>
public sealed class FakeUpstreamTests
{
    private const string Orphan = """{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_9","content":"Sun"}]}]}""";

    private FakeUpstream _upstream = null!;
    private HttpClient _client = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _upstream = await FakeUpstream.StartAsync();
        _client = new HttpClient { BaseAddress = new Uri(_upstream.Url) };
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        _client.Dispose();
        await _upstream.DisposeAsync();
    }

    [SetUp]
    public void Reset() => _upstream.Reset();

    private Task<HttpResponseMessage> PostAsync(string path, string body) =>
        _client.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));

    [Test]
    public async Task UniqueIds_EachAnswerGetsIdsOfItsOwn_AndIsOtherwiseTheFixture()
    {
        _upstream.UniqueIds = true;
        _upstream.Answer("OpenAIResponses", json: "response-function-call.json");
        const string request = """{"model":"m","input":"Weather?"}""";
        var first = await (await PostAsync("/v1/responses", request)).Content.ReadAsStringAsync();
        var second = await (await PostAsync("/v1/responses", request)).Content.ReadAsStringAsync();
        var fixture = Encoding.UTF8.GetString(_upstream.Fixture("response-function-call.json", "OpenAIResponses"));

        Assert.That(first, Is.Not.EqualTo(second));
        Assert.That(System.Text.RegularExpressions.Regex.Replace(first, "u1\\b", ""), Is.EqualTo(fixture), "only the ids changed");
        Assert.That(System.Text.RegularExpressions.Regex.Replace(second, "u2\\b", ""), Is.EqualTo(fixture));
        using var answer = System.Text.Json.JsonDocument.Parse(first);
        var call = answer.RootElement.GetProperty("output")[0];
        Assert.That(call.GetProperty("call_id").GetString(), Is.EqualTo("call_unLAR8MvFNptuiZK6K6HCy5ku1"), "property names stay as they are, their values change");
        Assert.That(call.GetProperty("id").GetString(), Is.EqualTo("fc_67ca09c6bedc8190a7abfec07b1a1332096610f474011cc0u1"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ReferenceToACallItAnswered_IsThatCall_SoItsOutputIsPaired(bool stream)
    {
        _upstream.UniqueIds = true;
        _upstream.Answer("OpenAIResponses", stream: "stream-function-call.sse", json: "response-function-call.json");
        var answer = await (await PostAsync("/v1/responses", $$"""{"model":"m","stream":{{(stream ? "true" : "false")}},"input":"Weather?"}""")).Content.ReadAsStringAsync();
        var item = System.Text.RegularExpressions.Regex.Match(answer, "\"(fc_[A-Za-z0-9]+)\"").Groups[1].Value;
        var call = System.Text.RegularExpressions.Regex.Match(answer, "\"(call_[A-Za-z0-9]+u1)\"").Groups[1].Value;
        Assert.That(_upstream.StoredItem(item)?.GetProperty("call_id").GetString(), Is.EqualTo(call));

        var paired = $$"""{"model":"m","input":[{"role":"user","content":"Weather?"},{"type":"item_reference","id":"{{item}}"},{"type":"function_call_output","call_id":"{{call}}","output":"Sun"}]}""";
        var response = await PostAsync("/v1/responses", paired);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());

        var orphan = paired.Replace(item, "fc_unknown", StringComparison.Ordinal);
        Assert.That((await PostAsync("/v1/responses", orphan)).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), "a reference to an item it never gave pairs nothing");
        Assert.That(_upstream.Rejections, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Post_InvalidConversation_AnswersTheProviders400AndRecordsIt()
    {
        using var response = await PostAsync("/v1/messages", Orphan);
        var body = await response.Content.ReadAsStringAsync();

        var message = "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9. "
            + "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.";
        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
            Assert.That(body, Is.EqualTo(ProviderRules.ErrorBody("AnthropicMessages", message)));
            Assert.That(_upstream.Rejections, Is.EqualTo(new[] { "POST /v1/messages: " + message }));
            Assert.That(_upstream.LastRequest.Rejection, Is.EqualTo(message));
        });
    }

    [Test]
    public async Task Post_InvalidConversationWithValidationOff_GetsTheFixture()
    {
        _upstream.ValidatesRequests = false;

        using var response = await PostAsync("/v1/messages", Orphan);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(_upstream.Rejections, Is.Empty);
            Assert.That(_upstream.LastRequest.Rejection, Is.Null);
        });
    }

    [Test]
    public async Task Reset_AfterARejectionWithValidationOff_ValidatesAgainAndForgetsTheRejections()
    {
        using (await PostAsync("/api/chat", """{"model":"llama3.2","stream":false,"messages":[{"role":"tool","content":"Sun"}]}"""))
        {
        }

        _upstream.ValidatesRequests = false;
        _upstream.Reset();

        Assert.Multiple(() =>
        {
            Assert.That(_upstream.ValidatesRequests, Is.True);
            Assert.That(_upstream.Rejections, Is.Empty);
        });
    }

    [TestCase("/v1/chat/completions", "this is not JSON")]
    [TestCase("/v1/embeddings", """{"messages":[{"role":"tool","tool_call_id":"x","content":"Sun"}]}""")]
    [TestCase("/v1/responses", """{"model":"gpt-4.1","input":"Hi"}""")]
    public async Task Post_BodyTheRulesDoNotRead_GetsTheFixture(string path, string body)
    {
        using var response = await PostAsync(path, body);

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(_upstream.Rejections, Is.Empty);
        });
    }
}
