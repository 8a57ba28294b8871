using System.Text;
using Mnemo.Proxy.Dialects;

namespace Mnemo.Proxy.Tests.Dialects;

/// <summary>Each dialect's <see cref="Dialect.ContinuesToolExchange"/>: is a turn's first input item a tool result?</summary>
public sealed class ToolExchangeTests
{
    [TestCase("""{"role":"tool","tool_call_id":"call_abc123","content":"Sunny"}""", true)]
    [TestCase("""{"content":"Sunny","tool_call_id":"call_abc123","role":"tool"}""", true)]
    [TestCase("""{"role":"\u0074ool","tool_call_id":"call_abc123","content":"Sunny"}""", true)]
    [TestCase("""{"role":"user","content":"What is the weather?"}""", false)]
    [TestCase("""{"role":"user","content":[{"type":"text","text":"role tool"}],"name":"tool"}""", false)]
    [TestCase("""{"role":"assistant","tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"f","arguments":"{}"}}]}""", false)]
    [TestCase("""{"content":"no role"}""", false)]
    [TestCase("\"a string\"", false)]
    public void ContinuesToolExchange_OpenAIChat_ToolMessageOnly(string item, bool expected) =>
        Assert.That(new OpenAIChatDialect().ContinuesToolExchange(Encoding.UTF8.GetBytes(item)), Is.EqualTo(expected));

    [TestCase("""{"role":"tool","tool_name":"get_weather","content":"11 degrees celsius"}""", true)]
    [TestCase("""{"role":"tool","tool_call_id":"call_k3x9q2ab","tool_name":"get_weather","content":"11 degrees"}""", true)]
    [TestCase("""{"role":"user","content":"tool","images":["aGk="]}""", false)]
    [TestCase("""{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{}}}]}""", false)]
    public void ContinuesToolExchange_OllamaChat_ToolMessageOnly(string item, bool expected) =>
        Assert.That(new OllamaChatDialect().ContinuesToolExchange(Encoding.UTF8.GetBytes(item)), Is.EqualTo(expected));

    [TestCase("""{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"Sunny"}]}""", true)]
    [TestCase("""{"role":"user","content":[{"tool_use_id":"toolu_01","content":[{"type":"text","text":"Sunny"}],"type":"tool_result"},{"type":"text","text":"Thanks"}]}""", true)]
    [TestCase("""{"content":[{"type":"tool_result","tool_use_id":"toolu_01","content":[{"type":"text","text":"Sunny"}]}],"role":"user"}""", true)]
    [TestCase("""{"content":[{"type":"tool_result","tool_use_id":"toolu_01","is_error":true}],"cache_control":{"type":"ephemeral"},"role":"user"}""", true)]
    [TestCase("""{"role":"user","content":"tool_result"}""", false)]
    [TestCase("""{"role":"user","content":[{"type":"text","text":"Here:"},{"type":"tool_result","tool_use_id":"toolu_01"}]}""", false)]
    [TestCase("""{"role":"user","content":[]}""", false)]
    [TestCase("""{"content":[{"type":"tool_result","tool_use_id":"toolu_01"}],"role":"assistant"}""", false)]
    [TestCase("""{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"f","input":{}}]}""", false)]
    public void ContinuesToolExchange_AnthropicMessages_UserMessageStartingWithAToolResult(string item, bool expected) =>
        Assert.That(new AnthropicMessagesDialect().ContinuesToolExchange(Encoding.UTF8.GetBytes(item)), Is.EqualTo(expected));

    [TestCase("""{"type":"function_call_output","call_id":"call_unLAR8MvFNptuiZK6K6HCy5k","output":"Sunny"}""", true)]
    [TestCase("""{"call_id":"call_1","output":[{"type":"input_text","text":"Sunny"}],"type":"function_call_output"}""", true)]
    [TestCase("""{"type":"custom_tool_call_output","call_id":"call_1","output":"done"}""", true)]
    [TestCase("""{"type":"computer_call_output","call_id":"call_1","output":{"type":"computer_screenshot","image_url":"data:image/png;base64,aGk="}}""", true)]
    [TestCase("""{"type":"function_call_outpu\u0074","call_id":"call_1","output":"Sunny"}""", true)]
    [TestCase("""{"role":"user","content":"function_call_output"}""", false)]
    [TestCase("""{"type":"message","role":"user","content":[{"type":"input_text","text":"Hi"}]}""", false)]
    [TestCase("""{"type":"function_call","call_id":"call_1","name":"f","arguments":"{}"}""", false)]
    [TestCase("""{"type":"item_reference","id":"fc_1"}""", false)]
    [TestCase("\"Tell me a story.\"", false)]
    public void ContinuesToolExchange_OpenAIResponses_AnOutputOfACall(string item, bool expected) =>
        Assert.That(new OpenAIResponsesDialect().ContinuesToolExchange(Encoding.UTF8.GetBytes(item)), Is.EqualTo(expected));
}
