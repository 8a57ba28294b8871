using System.Text.Encodings.Web;
using System.Text.Json;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// The conversation rules each provider enforces with a 400 before a model runs, worded as the provider words them:
/// the fake upstream applies them to every request, so a test whose forwarded conversation is invalid fails as it
/// would against the real API. Each API's method takes the request body and returns null when it is valid, else the
/// provider's error message.
/// </summary>
/// <remarks>
/// Only the conversation is checked (roles, alternation, tool calls paired with their results by id, duplicate ids),
/// not every field's schema: tests send odd bodies on purpose to see them passed through untouched, so an item that
/// is not an object, or lacks the field a rule reads, is left to the rules that can read it. The messages come from
/// the providers' answers as users reported them; where a rule's wording was not found, the message says so.
/// </remarks>
public static class ProviderRules
{
    private static readonly JsonSerializerOptions s_errorJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// The dialect whose rules a POST to <paramref name="path"/> is checked by: <see cref="FakeUpstream.DialectOf"/>'s,
    /// when the path is one of the four APIs' (that method's fallback, OpenAI Chat, covers every other path); else null.
    /// </summary>
    public static string? ApiOf(string path)
    {
        var dialect = FakeUpstream.DialectOf(path);
        return dialect != "OpenAIChat" || path.EndsWith("/chat/completions", StringComparison.Ordinal) ? dialect : null;
    }

    /// <summary>
    /// The provider's message for a request body, or null when the body is valid or is not a conversation these rules
    /// read: not a JSON object, or without the dialect's array (<c>messages</c>; <c>input</c> for Responses).
    /// <paramref name="storedItem"/> resolves a Responses <c>item_reference</c> as the provider does (see
    /// <see cref="OpenAIResponses(JsonElement, Func{string, JsonElement?})"/>).
    /// </summary>
    public static string? Check(string dialect, ReadOnlyMemory<byte> body, Func<string, JsonElement?>? storedItem = null)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            return null;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            return dialect switch
            {
                "OpenAIChat" => OpenAIChat(root),
                "AnthropicMessages" => AnthropicMessages(root),
                "OpenAIResponses" => OpenAIResponses(root, storedItem),
                "OllamaChat" => OllamaChat(root),
                _ => null,
            };
        }
    }

    /// <summary>The body of the provider's 400 answer carrying <paramref name="message"/>, in its API's error shape.</summary>
    public static string ErrorBody(string dialect, string message) => dialect switch
    {
        "AnthropicMessages" => JsonSerializer.Serialize(new { type = "error", error = new { type = "invalid_request_error", message } }, s_errorJson),
        "OllamaChat" => JsonSerializer.Serialize(new { error = message }, s_errorJson),
        _ => JsonSerializer.Serialize(new { error = new { message, type = "invalid_request_error", param = (string?)null, code = (string?)null } }, s_errorJson),
    };

    /// <summary>
    /// OpenAI Chat Completions: an assistant message's <c>tool_calls</c> are answered by the <c>tool</c> messages that
    /// directly follow it, every call before any other message; a tool message answers a call of that nearest assistant
    /// message; no id is used twice.
    /// </summary>
    public static string? OpenAIChat(JsonElement body)
    {
        if (!TryArray(body, "messages", out var messages))
        {
            return null;
        }

        // Where each id was first used, for the duplicate messages (which name both positions).
        var calls = new Dictionary<string, int>(StringComparer.Ordinal);
        var results = new Dictionary<string, int>(StringComparer.Ordinal);

        // The calls of the nearest assistant message with tool_calls, while only tool messages follow it.
        HashSet<string>? answerable = null;
        var unanswered = new List<string>();
        var index = -1;
        foreach (var message in messages.EnumerateArray())
        {
            index++;
            var role = message.ValueKind == JsonValueKind.Object && TryString(message, "role", out var r) ? r : null;
            if (role is not (null or "system" or "developer" or "user" or "assistant" or "tool" or "function"))
            {
                return $"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.";
            }

            if (role == "tool")
            {
                if (!TryString(message, "tool_call_id", out var id))
                {
                    return $"Missing required parameter: 'messages[{index}].tool_call_id'.";
                }

                if (answerable is null || !answerable.Contains(id))
                {
                    return "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.";
                }

                if (!results.TryAdd(id, index))
                {
                    return $"Invalid parameter: Duplicate value for 'tool_call_id' of '{id}', in messages[{results[id]}] and messages[{index}].";
                }

                unanswered.Remove(id);
                continue;
            }

            if (unanswered.Count > 0)
            {
                return ToolCallsNotAnswered(unanswered);
            }

            answerable = null;
            if (role != "assistant" || !message.TryGetProperty("tool_calls", out var toolCalls) || toolCalls.ValueKind != JsonValueKind.Array)
            {
                continue;
            }

            if (toolCalls.GetArrayLength() == 0)
            {
                return $"Invalid 'messages[{index}].tool_calls': empty array. Expected an array with minimum length 1, but got an empty array instead.";
            }

            answerable = [];
            var position = -1;
            foreach (var call in toolCalls.EnumerateArray())
            {
                position++;
                if (call.ValueKind != JsonValueKind.Object || !TryString(call, "id", out var id))
                {
                    return $"Missing required parameter: 'messages[{index}].tool_calls[{position}].id'.";
                }

                if (call.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object
                    && function.TryGetProperty("arguments", out var arguments) && arguments.ValueKind != JsonValueKind.String)
                {
                    return $"Invalid type for 'messages[{index}].tool_calls[{position}].function.arguments': expected a string, but got {Kind(arguments)} instead.";
                }

                // A call id used twice can only be answered twice, which the API rejects with the message above; a
                // call is rejected here already, where the second use is (this wording is the fake's).
                if (!calls.TryAdd(id, index))
                {
                    return $"Invalid parameter: Duplicate value for 'tool_calls[].id' of '{id}', in messages[{calls[id]}] and messages[{index}].";
                }

                answerable.Add(id);
                unanswered.Add(id);
            }
        }

        return unanswered.Count > 0 ? ToolCallsNotAnswered(unanswered) : null;
    }

    /// <summary>
    /// Anthropic Messages: roles user and assistant (the system prompt is the top-level <c>system</c>), consecutive
    /// same-role messages combined into one turn (documented), the first turn the user's; every <c>tool_use</c> of an
    /// assistant turn answered by a <c>tool_result</c> at the start of the next turn, and every <c>tool_result</c>
    /// answering a <c>tool_use</c> of the turn before; <c>tool_use</c> ids unique; no empty content or text block.
    /// </summary>
    /// <remarks>
    /// Claude Opus 4.8 also takes <c>role: "system"</c> messages right after a user turn (mid-conversation system
    /// messages); the models before it answer 400, and so does the fake: Mnemo keeps the system prompt top-level.
    /// </remarks>
    public static string? AnthropicMessages(JsonElement body)
    {
        if (!TryArray(body, "messages", out var messages))
        {
            return null;
        }

        var turns = new List<AnthropicTurn>();
        var toolUses = new HashSet<string>(StringComparer.Ordinal);
        var count = messages.GetArrayLength();
        var index = -1;
        foreach (var message in messages.EnumerateArray())
        {
            index++;
            if (message.ValueKind != JsonValueKind.Object || !TryString(message, "role", out var role))
            {
                continue;
            }

            if (role == "system")
            {
                return "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.";
            }

            if (role is not ("user" or "assistant"))
            {
                return $"messages.{index}.role: Input should be 'user' or 'assistant'";
            }

            var blocks = new List<AnthropicBlock>();
            if (message.TryGetProperty("content", out var content))
            {
                var empty = content.ValueKind switch
                {
                    JsonValueKind.String => content.GetString()!.Length == 0,
                    JsonValueKind.Array => content.GetArrayLength() == 0,
                    _ => false,
                };
                if (empty && !(role == "assistant" && index == count - 1))
                {
                    return $"messages.{index}: all messages must have non-empty content except for the optional final assistant message";
                }

                if (content.ValueKind == JsonValueKind.String)
                {
                    // A string is shorthand for one text block (documented).
                    blocks.Add(new AnthropicBlock("text", null, index, 0));
                }
                else if (content.ValueKind == JsonValueKind.Array)
                {
                    var position = -1;
                    foreach (var block in content.EnumerateArray())
                    {
                        position++;
                        var type = block.ValueKind == JsonValueKind.Object && TryString(block, "type", out var t) ? t : "";
                        var id = type switch
                        {
                            "tool_use" => TryString(block, "id", out var use) ? use : null,
                            "tool_result" => TryString(block, "tool_use_id", out var result) ? result : null,
                            _ => null,
                        };
                        if (type == "text" && TryString(block, "text", out var text) && text.Length == 0)
                        {
                            return "messages: text content blocks must be non-empty";
                        }

                        if (type == "tool_use" && id is not null && !toolUses.Add(id))
                        {
                            return $"messages.{index}.content.{position}: `tool_use` ids must be unique";
                        }

                        if (type == "tool_use" && (!block.TryGetProperty("input", out var input) || input.ValueKind != JsonValueKind.Object))
                        {
                            return $"messages.{index}.content.{position}.tool_use.input: Input should be a valid dictionary";
                        }

                        blocks.Add(new AnthropicBlock(type, id, index, position));
                    }
                }
            }

            if (turns.Count > 0 && turns[^1].Role == role)
            {
                turns[^1].Blocks.AddRange(blocks);
            }
            else
            {
                turns.Add(new AnthropicTurn(role, index, blocks));
            }
        }

        if (turns.Count > 0 && turns[0].Role != "user")
        {
            return "messages: first message must use the \"user\" role";
        }

        for (var i = 0; i < turns.Count; i++)
        {
            var turn = turns[i];
            var uses = turn.Role == "assistant" ? turn.Blocks.Where(b => b is { Type: "tool_use", Id: not null }).ToList() : [];
            if (turn.Role == "user")
            {
                var called = i > 0 ? turns[i - 1].Blocks.Where(b => b.Type == "tool_use").Select(b => b.Id).ToHashSet() : [];
                if (turn.Blocks.FirstOrDefault(b => b is { Type: "tool_result", Id: not null } && !called.Contains(b.Id)) is { } stray)
                {
                    return $"messages.{stray.Message}.content.{stray.Position}: unexpected `tool_use_id` found in `tool_result` blocks: {stray.Id}. "
                        + "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.";
                }

                continue;
            }

            if (uses.Count == 0)
            {
                continue;
            }

            var next = i + 1 < turns.Count ? turns[i + 1].Blocks : [];
            var answered = next.Where(b => b.Type == "tool_result").Select(b => b.Id).ToHashSet();
            var missing = uses.Where(u => !answered.Contains(u.Id)).ToList();
            if (missing.Count > 0)
            {
                return $"messages.{missing[0].Message}: `tool_use` ids were found without `tool_result` blocks immediately after: {string.Join(", ", missing.Select(u => u.Id))}. "
                    + "Each `tool_use` block must have a corresponding `tool_result` block in the next message.";
            }

            var leading = next.TakeWhile(b => b.Type == "tool_result").Count();
            if (leading < uses.Count)
            {
                return $"messages.{turns[i + 1].Message}: Did not find {uses.Count} `tool_result` block(s) at the beginning of this message. "
                    + "Messages following `tool_use` blocks must begin with a matching number of `tool_result` blocks.";
            }
        }

        return null;
    }

    /// <summary>
    /// OpenAI Responses: every <c>function_call</c> in <c>input</c> answered by a <c>function_call_output</c> with its
    /// <c>call_id</c> later in <c>input</c>; every output answering a call earlier in <c>input</c>, unless the request
    /// continues a stored conversation (<c>previous_response_id</c>, <c>conversation</c>), whose calls the provider holds;
    /// no item id, nor call id, used twice. A string <c>input</c> is always valid.
    /// </summary>
    /// <remarks>
    /// An <c>item_reference</c> names an item only the provider can resolve: it counts in the duplicate-id check by its
    /// own <c>id</c>, and not in the pairing. Item types the rules do not name are passed.
    /// </remarks>
    public static string? OpenAIResponses(JsonElement body) => OpenAIResponses(body, null);

    /// <summary>
    /// <see cref="OpenAIResponses(JsonElement)"/>, an <c>item_reference</c> that <paramref name="storedItem"/> resolves
    /// standing for the item it names, as the provider reads it: a reference to a stored <c>function_call</c> is that
    /// call, answered by the output after it (what a full-history client with <c>store: true</c> sends).
    /// </summary>
    /// <param name="storedItem">An output item the provider stored, by its id; null for one it does not know.</param>
    public static string? OpenAIResponses(JsonElement body, Func<string, JsonElement?>? storedItem)
    {
        if (!TryArray(body, "input", out var input))
        {
            return null;
        }

        var held = IsSet(body, "previous_response_id") || IsSet(body, "conversation");
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var calls = new List<string>();
        var answered = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in input.EnumerateArray())
        {
            if (entry.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            var hasId = TryString(entry, "id", out var id);
            if (hasId && !ids.Add(id))
            {
                return $"Duplicate item found with id {id}. Remove duplicate items from your input and try again.";
            }

            var item = entry;
            var type = TryString(item, "type", out var t) ? t : "message";
            if (type == "item_reference")
            {
                if (!hasId || storedItem?.Invoke(id) is not { } named)
                {
                    continue;
                }

                item = named;
                type = TryString(item, "type", out var namedType) ? namedType : "message";
            }

            if (type == "message" && TryString(item, "role", out var role) && role is not ("user" or "system" or "developer" or "assistant"))
            {
                return $"Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'.";
            }

            if (type is not ("function_call" or "function_call_output") || !TryString(item, "call_id", out var callId))
            {
                continue;
            }

            if (type == "function_call")
            {
                if (calls.Contains(callId))
                {
                    // The id message is the provider's; this one, for a call id, is the fake's.
                    return $"Duplicate item found with call_id {callId}. Remove duplicate items from your input and try again.";
                }

                calls.Add(callId);
            }
            else if (calls.Contains(callId))
            {
                answered.Add(callId);
            }
            else if (!held)
            {
                return $"No tool call found for function call output with call_id {callId}.";
            }
        }

        var unanswered = calls.FirstOrDefault(c => !answered.Contains(c));
        return unanswered is null ? null : $"No tool output found for function call {unanswered}.";
    }

    /// <summary>
    /// Ollama chat: Ollama itself checks no pairing, but the models' chat templates expect it, so the conservative rule:
    /// an assistant message's <c>tool_calls</c> are followed by <c>tool</c> messages, one per call (matched by
    /// <c>tool_call_id</c> when both sides have ids, else by count), before any other message; a tool message follows an
    /// assistant message with tool calls, or another tool message. The messages are the fake's.
    /// </summary>
    public static string? OllamaChat(JsonElement body)
    {
        if (!TryArray(body, "messages", out var messages))
        {
            return null;
        }

        // The calls of the nearest assistant message with tool calls, while only tool messages follow it.
        List<string?>? open = null;
        var caller = -1;
        var index = -1;
        foreach (var message in messages.EnumerateArray())
        {
            index++;
            var role = message.ValueKind == JsonValueKind.Object && TryString(message, "role", out var r) ? r : null;
            if (role == "tool")
            {
                if (open is null)
                {
                    return $"messages[{index}]: a tool message must follow an assistant message with tool_calls, or another tool message";
                }

                if (open.Count == 0)
                {
                    return $"messages[{index}]: more tool messages than the tool calls of messages[{caller}]";
                }

                var answered = 0;
                if (TryString(message, "tool_call_id", out var id) && open.Any(c => c is not null))
                {
                    answered = open.IndexOf(id);
                    if (answered < 0)
                    {
                        return $"messages[{index}]: tool_call_id '{id}' answers no open tool call of messages[{caller}]";
                    }
                }

                open.RemoveAt(answered);
                continue;
            }

            if (open is { Count: > 0 })
            {
                return OllamaNotAnswered(caller, open);
            }

            open = null;
            if (role == "assistant" && message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array && calls.GetArrayLength() > 0)
            {
                foreach (var call in calls.EnumerateArray())
                {
                    // Ollama's Go server decodes arguments into a map: a string (OpenAI's form) fails to unmarshal.
                    if (call.ValueKind == JsonValueKind.Object && call.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object
                        && function.TryGetProperty("arguments", out var arguments) && arguments.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
                    {
                        return $"json: cannot unmarshal {Kind(arguments)} into Go struct field ToolCallFunction.messages.tool_calls.function.arguments of type api.ToolCallFunctionArguments";
                    }
                }

                open = [.. calls.EnumerateArray().Select(c => c.ValueKind == JsonValueKind.Object && TryString(c, "id", out var callId) ? callId : null)];
                caller = index;
            }
        }

        return open is { Count: > 0 } ? OllamaNotAnswered(caller, open) : null;
    }

    private static string ToolCallsNotAnswered(List<string> unanswered) =>
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
        + $"The following tool_call_ids did not have response messages: {string.Join(", ", unanswered)}";

    private static string OllamaNotAnswered(int caller, List<string?> open) =>
        $"messages[{caller}]: an assistant message with tool_calls must be followed by one tool message per call before any other message; "
        + $"{open.Count} not answered" + (open.Any(c => c is not null) ? $": {string.Join(", ", open.Where(c => c is not null))}" : "");

    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        _ => "a " + value.ValueKind.ToString().ToLowerInvariant(),
    };

    private static bool TryArray(JsonElement body, string name, out JsonElement array)
    {
        array = default;
        return body.ValueKind == JsonValueKind.Object && body.TryGetProperty(name, out array) && array.ValueKind == JsonValueKind.Array;
    }

    private static bool TryString(JsonElement element, string name, out string value)
    {
        value = "";
        if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out var property) || property.ValueKind != JsonValueKind.String)
        {
            return false;
        }

        value = property.GetString()!;
        return true;
    }

    private static bool IsSet(JsonElement body, string name) =>
        body.TryGetProperty(name, out var value) && value.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined);

    /// <summary>A turn: one message, or a run of same-role messages the API combines; <see cref="Message"/> is its first.</summary>
    private sealed record AnthropicTurn(string Role, int Message, List<AnthropicBlock> Blocks);

    /// <summary>A content block: its type, its tool id (a tool_use's id, a tool_result's tool_use_id) and where it is.</summary>
    private sealed record AnthropicBlock(string Type, string? Id, int Message, int Position);
}
