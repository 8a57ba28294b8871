using System.Text;
using System.Text.Json;

namespace Mnemo.Proxy.Tests.Common;

public sealed class ProviderRulesTests
{
    private static JsonElement Body(string json) => JsonDocument.Parse(json).RootElement;

    private static string Calls(params string[] ids) =>
        string.Join(",", ids.Select(id => $$$"""{"id":"{{{id}}}","type":"function","function":{"name":"get_weather","arguments":"{}"}}"""));

    [Test]
    public void OpenAIChat_ToolLoopWithParallelCalls_IsValid()
    {
        var body = Body($$"""
            {"model":"gpt-4o-mini","messages":[
              {"role":"developer","content":"Be brief."},
              {"role":"user","content":"Weather in Paris and Rome?"},
              {"role":"assistant","content":null,"tool_calls":[{{Calls("call_1", "call_2")}}]},
              {"role":"tool","tool_call_id":"call_2","content":"Rain"},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"},
              {"role":"assistant","content":"Sun in Paris, rain in Rome."},
              {"role":"user","content":"And Oslo?"},
              {"role":"assistant","tool_calls":[{{Calls("call_3")}}]},
              {"role":"tool","tool_call_id":"call_3","content":"Snow"},
              {"role":"user","content":"Thanks"}]}
            """);

        Assert.That(ProviderRules.OpenAIChat(body), Is.Null);
    }

    [Test]
    public void OpenAIChat_UserMessageBeforeEveryCallIsAnswered_NamesTheUnansweredCalls()
    {
        var body = Body($$"""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","tool_calls":[{{Calls("call_1", "call_2", "call_3")}}]},
              {"role":"tool","tool_call_id":"call_2","content":"Rain"},
              {"role":"user","content":"Hello?"}]}
            """);

        Assert.That(ProviderRules.OpenAIChat(body), Is.EqualTo(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
            + "The following tool_call_ids did not have response messages: call_1, call_3"));
    }

    [Test]
    public void OpenAIChat_ConversationEndsOnUnansweredCall_NamesTheCall()
    {
        var body = Body($$"""{"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","tool_calls":[{{Calls("call_1")}}]}]}""");

        Assert.That(ProviderRules.OpenAIChat(body), Does.EndWith("did not have response messages: call_1"));
    }

    [Test]
    public void OpenAIChat_ToolMessageAfterAUserMessage_IsNotAResponse()
    {
        // call_1 was answered and closed; a second result for it after the user's message answers nothing.
        var body = Body($$"""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","tool_calls":[{{Calls("call_1")}}]},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"},
              {"role":"user","content":"Again?"},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"}]}
            """);

        Assert.That(ProviderRules.OpenAIChat(body), Is.EqualTo(
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."));
    }

    [Test]
    public void OpenAIChat_ToolMessageForACallOfAnEarlierAssistantMessage_IsNotAResponse()
    {
        var body = Body($$"""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","tool_calls":[{{Calls("call_1")}}]},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"},
              {"role":"assistant","tool_calls":[{{Calls("call_2")}}]},
              {"role":"tool","tool_call_id":"call_2","content":"Rain"},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"}]}
            """);

        Assert.That(ProviderRules.OpenAIChat(body), Does.Contain("must be a response to a preceeding message with 'tool_calls'"));
    }

    [Test]
    public void OpenAIChat_CallAnsweredTwice_IsADuplicateToolCallId()
    {
        var body = Body($$"""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","tool_calls":[{{Calls("call_1", "call_2")}}]},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"},
              {"role":"tool","tool_call_id":"call_2","content":"Rain"}]}
            """);

        Assert.That(ProviderRules.OpenAIChat(body), Is.EqualTo(
            "Invalid parameter: Duplicate value for 'tool_call_id' of 'call_1', in messages[2] and messages[3]."));
    }

    [Test]
    public void OpenAIChat_CallIdUsedByTwoAssistantMessages_IsADuplicate()
    {
        var body = Body($$"""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","tool_calls":[{{Calls("call_1")}}]},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"},
              {"role":"user","content":"Again?"},
              {"role":"assistant","tool_calls":[{{Calls("call_1")}}]},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"}]}
            """);

        Assert.That(ProviderRules.OpenAIChat(body), Is.EqualTo(
            "Invalid parameter: Duplicate value for 'tool_calls[].id' of 'call_1', in messages[1] and messages[4]."));
    }

    [Test]
    public void OpenAIChat_UnknownRole_IsAnInvalidValue()
    {
        var body = Body("""{"messages":[{"role":"model","content":"Hi"}]}""");

        Assert.That(ProviderRules.OpenAIChat(body), Is.EqualTo(
            "Invalid value: 'model'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."));
    }

    [Test]
    public void OpenAIChat_EmptyToolCalls_IsRejected()
    {
        var body = Body("""{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello","tool_calls":[]}]}""");

        Assert.That(ProviderRules.OpenAIChat(body), Is.EqualTo(
            "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length 1, but got an empty array instead."));
    }

    [Test]
    public void AnthropicMessages_ToolLoopWithParallelUsesAndCombinedTurns_IsValid()
    {
        // Consecutive same-role messages combine into one turn (documented): the two results, split over two user
        // messages, answer both uses, and the assistant's text and tool_use below are one turn answered by the next.
        var body = Body("""
            {"model":"claude-sonnet-4-5","system":"Be brief.","messages":[
              {"role":"user","content":"Weather in Paris and Rome?"},
              {"role":"assistant","content":[
                {"type":"text","text":"Checking both."},
                {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},
                {"type":"tool_use","id":"toolu_2","name":"get_weather","input":{"city":"Rome"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_2","content":"Rain"}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"Sun"}]},
              {"role":"user","content":"And which is warmer?"},
              {"role":"assistant","content":"Paris."},
              {"role":"assistant","content":[{"type":"tool_use","id":"toolu_3","name":"get_weather","input":{"city":"Oslo"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_3","content":"Snow"},{"type":"text","text":"Thanks"}]},
              {"role":"assistant","content":""}]}
            """);

        Assert.That(ProviderRules.AnthropicMessages(body), Is.Null);
    }

    [Test]
    public void AnthropicMessages_ToolUseFollowedByAPlainUserMessage_NamesTheUnansweredIds()
    {
        var body = Body("""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":[
                {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}},
                {"type":"tool_use","id":"toolu_2","name":"get_weather","input":{}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"Sun"}]},
              {"role":"user","content":"Hello?"}]}
            """);

        Assert.That(ProviderRules.AnthropicMessages(body), Is.EqualTo(
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_2. "
            + "Each `tool_use` block must have a corresponding `tool_result` block in the next message."));
    }

    [Test]
    public void AnthropicMessages_ToolResultAfterTextInTheNextTurn_DidNotFindTheResultsAtTheBeginning()
    {
        // Two user messages combine into one turn whose first block is text.
        var body = Body("""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]},
              {"role":"user","content":"Here it is:"},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"Sun"}]}]}
            """);

        Assert.That(ProviderRules.AnthropicMessages(body), Is.EqualTo(
            "messages.2: Did not find 1 `tool_result` block(s) at the beginning of this message. "
            + "Messages following `tool_use` blocks must begin with a matching number of `tool_result` blocks."));
    }

    [Test]
    public void AnthropicMessages_ToolResultForAToolUseOfAnEarlierTurn_IsUnexpected()
    {
        var body = Body("""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"Sun"}]},
              {"role":"assistant","content":"Sunny."},
              {"role":"user","content":[{"type":"text","text":"Again:"},{"type":"tool_result","tool_use_id":"toolu_1","content":"Sun"}]}]}
            """);

        Assert.That(ProviderRules.AnthropicMessages(body), Is.EqualTo(
            "messages.4.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1. "
            + "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."));
    }

    [Test]
    public void AnthropicMessages_ToolResultInTheFirstMessage_IsUnexpected()
    {
        var body = Body("""{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_9","content":"Sun"}]}]}""");

        Assert.That(ProviderRules.AnthropicMessages(body), Does.StartWith("messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9."));
    }

    [Test]
    public void AnthropicMessages_ToolUseIdUsedTwice_MustBeUnique()
    {
        var body = Body("""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":[
                {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}},
                {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"Sun"}]}]}
            """);

        Assert.That(ProviderRules.AnthropicMessages(body), Is.EqualTo("messages.1.content.1: `tool_use` ids must be unique"));
    }

    [Test]
    public void AnthropicMessages_SystemRoleInMessages_PointsAtTheTopLevelSystem()
    {
        var body = Body("""{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}""");

        Assert.That(ProviderRules.AnthropicMessages(body), Is.EqualTo(
            "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role."));
    }

    [Test]
    public void AnthropicMessages_FirstTurnIsTheAssistants_MustBeTheUsers()
    {
        var body = Body("""{"messages":[{"role":"assistant","content":"Hello"},{"role":"user","content":"Hi"}]}""");

        Assert.That(ProviderRules.AnthropicMessages(body), Is.EqualTo("messages: first message must use the \"user\" role"));
    }

    [TestCase("\"\"")]
    [TestCase("[]")]
    public void AnthropicMessages_EmptyContentBeforeTheEnd_IsRejected(string content)
    {
        var body = Body($$"""{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":{{content}}},{"role":"user","content":"Hello?"}]}""");

        Assert.That(ProviderRules.AnthropicMessages(body), Is.EqualTo(
            "messages.1: all messages must have non-empty content except for the optional final assistant message"));
    }

    [Test]
    public void AnthropicMessages_EmptyFinalUserMessage_IsRejected()
    {
        var body = Body("""{"messages":[{"role":"user","content":[]}]}""");

        Assert.That(ProviderRules.AnthropicMessages(body), Does.StartWith("messages.0: all messages must have non-empty content"));
    }

    [Test]
    public void AnthropicMessages_EmptyTextBlock_IsRejected()
    {
        var body = Body("""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":[{"type":"text","text":""},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"Sun"}]}]}
            """);

        Assert.That(ProviderRules.AnthropicMessages(body), Is.EqualTo("messages: text content blocks must be non-empty"));
    }

    [Test]
    public void OpenAIResponses_ToolLoopWithParallelCalls_IsValid()
    {
        var body = Body("""
            {"model":"gpt-4.1","instructions":"Be brief.","input":[
              {"role":"developer","content":"Use tools."},
              {"role":"user","content":"Weather in Paris and Rome?"},
              {"type":"reasoning","id":"rs_1","summary":[]},
              {"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{}"},
              {"type":"function_call","id":"fc_2","call_id":"call_2","name":"get_weather","arguments":"{}"},
              {"type":"function_call_output","call_id":"call_2","output":"Rain"},
              {"type":"function_call_output","call_id":"call_1","output":"Sun"},
              {"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Sun and rain."}]},
              {"type":"item_reference","id":"msg_0"},
              {"type":"web_search_call","id":"ws_1","status":"completed"},
              {"role":"user","content":"Thanks"}]}
            """);

        Assert.That(ProviderRules.OpenAIResponses(body), Is.Null);
    }

    [Test]
    public void OpenAIResponses_StringInput_IsValid() =>
        Assert.That(ProviderRules.Check("OpenAIResponses", Encoding.UTF8.GetBytes("""{"input":"Hi"}""")), Is.Null);

    [Test]
    public void OpenAIResponses_CallWithoutOutput_NoToolOutputFound()
    {
        var body = Body("""
            {"input":[
              {"role":"user","content":"Weather?"},
              {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{}"},
              {"role":"user","content":"Hello?"}]}
            """);

        Assert.That(ProviderRules.OpenAIResponses(body), Is.EqualTo("No tool output found for function call call_1."));
    }

    [Test]
    public void OpenAIResponses_OutputBeforeItsCall_NoToolCallFound()
    {
        var body = Body("""
            {"input":[
              {"type":"function_call_output","call_id":"call_1","output":"Sun"},
              {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{}"}]}
            """);

        Assert.That(ProviderRules.OpenAIResponses(body), Is.EqualTo("No tool call found for function call output with call_id call_1."));
    }

    [TestCase("previous_response_id", "\"resp_1\"")]
    [TestCase("conversation", "\"conv_1\"")]
    [TestCase("conversation", """{"id":"conv_1"}""")]
    public void OpenAIResponses_OutputForAProviderHeldCall_IsValid(string field, string value)
    {
        var body = Body($$"""{"{{field}}":{{value}},"input":[{"type":"function_call_output","call_id":"call_1","output":"Sun"}]}""");

        Assert.That(ProviderRules.OpenAIResponses(body), Is.Null);
    }

    [Test]
    public void OpenAIResponses_UnansweredCallInTheInputOfAContinuation_IsStillRejected()
    {
        var body = Body("""{"previous_response_id":"resp_1","input":[{"type":"function_call","call_id":"call_2","name":"f","arguments":"{}"},{"role":"user","content":"Hi"}]}""");

        Assert.That(ProviderRules.OpenAIResponses(body), Is.EqualTo("No tool output found for function call call_2."));
    }

    [Test]
    public void OpenAIResponses_NullPreviousResponseId_HoldsNothing()
    {
        var body = Body("""{"previous_response_id":null,"input":[{"type":"function_call_output","call_id":"call_1","output":"Sun"}]}""");

        Assert.That(ProviderRules.OpenAIResponses(body), Is.EqualTo("No tool call found for function call output with call_id call_1."));
    }

    [Test]
    public void OpenAIResponses_ItemIdTwice_IsADuplicateItem()
    {
        var body = Body("""
            {"input":[
              {"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Hi"}]},
              {"type":"item_reference","id":"msg_1"}]}
            """);

        Assert.That(ProviderRules.OpenAIResponses(body), Is.EqualTo("Duplicate item found with id msg_1. Remove duplicate items from your input and try again."));
    }

    private static readonly Dictionary<string, JsonElement> s_stored = new()
    {
        ["fc_1"] = Body("""{"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{}","status":"completed"}"""),
        ["msg_1"] = Body("""{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"Sun."}]}"""),
    };

    private static JsonElement? Stored(string id) => s_stored.TryGetValue(id, out var item) ? item : null;

    [Test]
    public void OpenAIResponses_OutputAfterAReferenceToItsStoredCall_IsValid()
    {
        var body = Body("""
            {"store":true,"input":[
              {"role":"user","content":"Weather?"},
              {"type":"item_reference","id":"fc_1"},
              {"type":"function_call_output","call_id":"call_1","output":"Sun"},
              {"type":"item_reference","id":"msg_1"},
              {"role":"user","content":"Thanks"}]}
            """);

        Assert.That(ProviderRules.OpenAIResponses(body, Stored), Is.Null);
        Assert.That(ProviderRules.OpenAIResponses(body), Is.EqualTo("No tool call found for function call output with call_id call_1."),
            "without the stored items the reference is nothing the rules can pair");
    }

    [Test]
    public void OpenAIResponses_ReferenceToAStoredCallWithoutItsOutput_NoToolOutputFound()
    {
        var body = Body("""{"input":[{"role":"user","content":"Weather?"},{"type":"item_reference","id":"fc_1"},{"role":"user","content":"Hello?"}]}""");

        Assert.That(ProviderRules.OpenAIResponses(body, Stored), Is.EqualTo("No tool output found for function call call_1."));
    }

    [Test]
    public void OpenAIResponses_StoredCallSentAgainBeforeAReferenceToIt_IsADuplicate()
    {
        var body = Body("""
            {"input":[
              {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{}"},
              {"type":"item_reference","id":"fc_1"},
              {"type":"function_call_output","call_id":"call_1","output":"Sun"}]}
            """);

        Assert.That(ProviderRules.OpenAIResponses(body, Stored), Is.EqualTo("Duplicate item found with call_id call_1. Remove duplicate items from your input and try again."));
    }

    [Test]
    public void OpenAIResponses_CallIdTwice_IsADuplicate()
    {
        var body = Body("""
            {"input":[
              {"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":"{}"},
              {"type":"function_call_output","call_id":"call_1","output":"Sun"},
              {"type":"function_call","id":"fc_2","call_id":"call_1","name":"f","arguments":"{}"},
              {"type":"function_call_output","call_id":"call_1","output":"Sun"}]}
            """);

        Assert.That(ProviderRules.OpenAIResponses(body), Is.EqualTo("Duplicate item found with call_id call_1. Remove duplicate items from your input and try again."));
    }

    [Test]
    public void OpenAIResponses_ToolRoleMessage_IsAnInvalidValue()
    {
        var body = Body("""{"input":[{"role":"tool","content":"Sun"}]}""");

        Assert.That(ProviderRules.OpenAIResponses(body), Is.EqualTo("Invalid value: 'tool'. Supported values are: 'assistant', 'system', 'developer', and 'user'."));
    }

    [Test]
    public void OllamaChat_ToolLoopWithParallelCalls_IsValid()
    {
        // The first loop's calls have no ids (matched by count), the second's do (matched by id, in any order).
        var body = Body("""
            {"model":"llama3.2","messages":[
              {"role":"system","content":"Be brief."},
              {"role":"user","content":"Weather in Paris and Rome?"},
              {"role":"assistant","content":"","tool_calls":[
                {"function":{"name":"get_weather","arguments":{"city":"Paris"}}},
                {"function":{"name":"get_weather","arguments":{"city":"Rome"}}}]},
              {"role":"tool","tool_name":"get_weather","content":"Sun"},
              {"role":"tool","tool_name":"get_weather","content":"Rain"},
              {"role":"assistant","content":"Sun and rain."},
              {"role":"user","content":"Oslo and Bergen?"},
              {"role":"assistant","content":"","tool_calls":[
                {"id":"call_1","function":{"name":"get_weather","arguments":{"city":"Oslo"}}},
                {"id":"call_2","function":{"name":"get_weather","arguments":{"city":"Bergen"}}}]},
              {"role":"tool","tool_call_id":"call_2","content":"Snow"},
              {"role":"tool","tool_call_id":"call_1","content":"Snow"},
              {"role":"user","content":"Thanks"}]}
            """);

        Assert.That(ProviderRules.OllamaChat(body), Is.Null);
    }

    [Test]
    public void OllamaChat_UserMessageBeforeEveryCallIsAnswered_IsRejected()
    {
        var body = Body("""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":"","tool_calls":[
                {"id":"call_1","function":{"name":"get_weather","arguments":{}}},
                {"id":"call_2","function":{"name":"get_weather","arguments":{}}}]},
              {"role":"tool","tool_call_id":"call_1","content":"Sun"},
              {"role":"user","content":"Hello?"}]}
            """);

        Assert.That(ProviderRules.OllamaChat(body), Is.EqualTo(
            "messages[1]: an assistant message with tool_calls must be followed by one tool message per call before any other message; 1 not answered: call_2"));
    }

    [Test]
    public void OllamaChat_ToolMessageAfterAUserMessage_IsRejected()
    {
        var body = Body("""{"messages":[{"role":"user","content":"Weather?"},{"role":"tool","tool_name":"get_weather","content":"Sun"}]}""");

        Assert.That(ProviderRules.OllamaChat(body), Is.EqualTo(
            "messages[1]: a tool message must follow an assistant message with tool_calls, or another tool message"));
    }

    [Test]
    public void OllamaChat_MoreToolMessagesThanCalls_IsRejected()
    {
        var body = Body("""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{}}}]},
              {"role":"tool","content":"Sun"},
              {"role":"tool","content":"Sun"}]}
            """);

        Assert.That(ProviderRules.OllamaChat(body), Is.EqualTo("messages[3]: more tool messages than the tool calls of messages[1]"));
    }

    [Test]
    public void OllamaChat_ToolCallIdOfNoCall_IsRejected()
    {
        var body = Body("""
            {"messages":[
              {"role":"user","content":"Weather?"},
              {"role":"assistant","content":"","tool_calls":[{"id":"call_1","function":{"name":"get_weather","arguments":{}}}]},
              {"role":"tool","tool_call_id":"call_9","content":"Sun"}]}
            """);

        Assert.That(ProviderRules.OllamaChat(body), Is.EqualTo("messages[2]: tool_call_id 'call_9' answers no open tool call of messages[1]"));
    }

    [TestCase("OpenAIChat", "not json at all")]
    [TestCase("OpenAIChat", "[1,2]")]
    [TestCase("OpenAIChat", """{"messages":"hello"}""")]
    [TestCase("AnthropicMessages", """{"prompt":"hello"}""")]
    [TestCase("OllamaChat", """{"model":"llama3.2","prompt":"hello"}""")]
    public void Check_BodyWithoutTheDialectsArray_IsNotChecked(string dialect, string body) =>
        Assert.That(ProviderRules.Check(dialect, Encoding.UTF8.GetBytes(body)), Is.Null);

    [Test]
    public void Check_InvalidConversation_GivesTheDialectsMessage() =>
        Assert.That(ProviderRules.Check("OllamaChat", Encoding.UTF8.GetBytes("""{"messages":[{"role":"tool","content":"Sun"}]}""")),
            Does.StartWith("messages[0]: a tool message must follow"));

    [TestCase("/v1/chat/completions", "OpenAIChat")]
    [TestCase("/openai/deployments/d/chat/completions", "OpenAIChat")]
    [TestCase("/v1/messages", "AnthropicMessages")]
    [TestCase("/v1/responses", "OpenAIResponses")]
    [TestCase("/api/chat", "OllamaChat")]
    [TestCase("/v1/embeddings", null)]
    [TestCase("/v1/messages/count_tokens", null)]
    [TestCase("/api/generate", null)]
    public void ApiOf_Path_GivesTheCheckedDialect(string path, string? expected) =>
        Assert.That(ProviderRules.ApiOf(path), Is.EqualTo(expected));

    [TestCase("OpenAIChat", """{"error":{"message":"it's `x`","type":"invalid_request_error","param":null,"code":null}}""")]
    [TestCase("OpenAIResponses", """{"error":{"message":"it's `x`","type":"invalid_request_error","param":null,"code":null}}""")]
    [TestCase("AnthropicMessages", """{"type":"error","error":{"type":"invalid_request_error","message":"it's `x`"}}""")]
    [TestCase("OllamaChat", """{"error":"it's `x`"}""")]
    public void ErrorBody_Dialect_IsTheProvidersShape(string dialect, string expected) =>
        Assert.That(ProviderRules.ErrorBody(dialect, "it's `x`"), Is.EqualTo(expected));
}
