using System.Text.Json;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// Structural checks of a request body against each API's rules, the ones a provider answers with a 400: roles,
/// alternation, and every tool call paired with its result (call first, result next, nothing orphaned).
/// Each returns the list of problems found; empty means valid.
/// </summary>
public static class ApiShapes
{
    public static List<string> OpenAIChat(JsonElement body)
    {
        var problems = new List<string>();
        var open = new List<string>();
        var index = 0;
        foreach (var message in body.GetProperty("messages").EnumerateArray())
        {
            var role = message.GetProperty("role").GetString();
            if (role is not ("system" or "developer" or "user" or "assistant" or "tool"))
            {
                problems.Add($"messages[{index}]: role '{role}'");
            }

            if (role != "tool" && open.Count > 0)
            {
                problems.Add($"messages[{index}]: tool calls {string.Join(",", open)} not answered before a {role} message");
                open.Clear();
            }

            if (role == "assistant" && message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
            {
                foreach (var call in calls.EnumerateArray())
                {
                    open.Add(call.GetProperty("id").GetString()!);
                    if (call.GetProperty("function").GetProperty("arguments").ValueKind != JsonValueKind.String)
                    {
                        problems.Add($"messages[{index}]: arguments must be a string");
                    }
                }
            }

            if (role == "tool" && !open.Remove(message.GetProperty("tool_call_id").GetString()!))
            {
                problems.Add($"messages[{index}]: tool result for a call that is not open");
            }

            index++;
        }

        if (open.Count > 0)
        {
            problems.Add($"tool calls {string.Join(",", open)} never answered");
        }

        return problems;
    }

    public static List<string> AnthropicMessages(JsonElement body)
    {
        var problems = new List<string>();
        var expected = "user";
        var pending = new HashSet<string>();
        var index = 0;
        foreach (var message in body.GetProperty("messages").EnumerateArray())
        {
            var role = message.GetProperty("role").GetString();
            if (role != expected)
            {
                problems.Add($"messages[{index}]: expected {expected}, got {role}");
            }

            expected = role == "user" ? "assistant" : "user";
            var content = message.GetProperty("content");
            var blocks = content.ValueKind == JsonValueKind.Array ? content.EnumerateArray().ToList() : [];
            if (role == "user")
            {
                var results = blocks.TakeWhile(b => b.GetProperty("type").GetString() == "tool_result").ToList();
                if (blocks.Skip(results.Count).Any(b => b.GetProperty("type").GetString() == "tool_result"))
                {
                    problems.Add($"messages[{index}]: tool_result blocks must come first");
                }

                foreach (var result in results)
                {
                    if (!pending.Remove(result.GetProperty("tool_use_id").GetString()!))
                    {
                        problems.Add($"messages[{index}]: tool_result for no tool_use of the previous message");
                    }
                }

                if (pending.Count > 0)
                {
                    problems.Add($"messages[{index}]: tool_use {string.Join(",", pending)} not answered");
                }

                pending.Clear();
            }
            else
            {
                if (pending.Count > 0)
                {
                    problems.Add($"messages[{index}]: open tool_use before an assistant message");
                }

                foreach (var use in blocks.Where(b => b.GetProperty("type").GetString() == "tool_use"))
                {
                    pending.Add(use.GetProperty("id").GetString()!);
                    if (use.GetProperty("input").ValueKind != JsonValueKind.Object)
                    {
                        problems.Add($"messages[{index}]: tool_use input must be an object");
                    }
                }
            }

            index++;
        }

        if (index == 0 || expected != "assistant")
        {
            problems.Add("the last message must be the user's");
        }

        return problems;
    }

    public static List<string> OpenAIResponses(JsonElement body)
    {
        var problems = new List<string>();
        var input = body.GetProperty("input");
        if (input.ValueKind == JsonValueKind.String)
        {
            return problems;
        }

        var open = new HashSet<string>();
        var index = 0;
        foreach (var item in input.EnumerateArray())
        {
            var type = item.TryGetProperty("type", out var t) ? t.GetString() : "message";
            switch (type)
            {
                case "message":
                    var role = item.GetProperty("role").GetString();
                    if (role is not ("system" or "developer" or "user" or "assistant"))
                    {
                        problems.Add($"input[{index}]: role '{role}'");
                    }

                    break;
                case "function_call":
                    open.Add(item.GetProperty("call_id").GetString()!);
                    break;
                case "function_call_output":
                    if (!open.Remove(item.GetProperty("call_id").GetString()!))
                    {
                        problems.Add($"input[{index}]: output for a call that is not open");
                    }

                    break;
                case "reasoning":
                    break;
                default:
                    problems.Add($"input[{index}]: item type '{type}'");
                    break;
            }

            index++;
        }

        if (open.Count > 0)
        {
            problems.Add($"function calls {string.Join(",", open)} never answered");
        }

        return problems;
    }

    public static List<string> OllamaChat(JsonElement body)
    {
        var problems = new List<string>();
        var open = 0;
        var index = 0;
        foreach (var message in body.GetProperty("messages").EnumerateArray())
        {
            var role = message.GetProperty("role").GetString();
            if (role is not ("system" or "user" or "assistant" or "tool"))
            {
                problems.Add($"messages[{index}]: role '{role}'");
            }

            if (role == "tool")
            {
                if (open == 0)
                {
                    problems.Add($"messages[{index}]: tool result with no open call");
                }
                else
                {
                    open--;
                }
            }
            else if (open > 0)
            {
                problems.Add($"messages[{index}]: {open} tool calls not answered before a {role} message");
                open = 0;
            }

            if (role == "assistant" && message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
            {
                foreach (var call in calls.EnumerateArray())
                {
                    open++;
                    if (call.GetProperty("function").GetProperty("arguments").ValueKind != JsonValueKind.Object)
                    {
                        problems.Add($"messages[{index}]: arguments must be an object");
                    }
                }
            }

            index++;
        }

        return problems;
    }
}
