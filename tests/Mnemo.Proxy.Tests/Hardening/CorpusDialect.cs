using System.Text;
using System.Text.Json;

namespace Mnemo.Proxy.Tests.Hardening;

/// <summary>The error JSON each API answers with.</summary>
public enum ErrorShape
{
    /// <summary><c>{"error":{"message","type","param","code"}}</c></summary>
    OpenAI,

    /// <summary><c>{"type":"error","error":{"type","message"}}</c></summary>
    Anthropic,

    /// <summary><c>{"error":"…"}</c></summary>
    Ollama,
}

/// <summary>One of the four APIs as the corpus drives it: its path, its history field, request bodies in its own shape, its error shape.</summary>
public sealed record CorpusDialect(string Label, string Path, string Field, ErrorShape Shape, string Folder, string AnswerText)
{
    public static readonly CorpusDialect OpenAIChat =
        new("openai-chat", "/v1/chat/completions", "messages", ErrorShape.OpenAI, "OpenAIChat", "Hello! How can I assist you today?");

    public static readonly CorpusDialect AnthropicMessages =
        new("anthropic-messages", "/v1/messages", "messages", ErrorShape.Anthropic, "AnthropicMessages", "Hi! My name is Claude.");

    public static readonly CorpusDialect OpenAIResponses =
        new("openai-responses", "/v1/responses", "input", ErrorShape.OpenAI, "OpenAIResponses", "In a peaceful grove beneath a silver moon");

    public static readonly CorpusDialect OllamaChat =
        new("ollama-chat", "/api/chat", "messages", ErrorShape.Ollama, "OllamaChat", "Hello! How can I help you today?");

    public static readonly CorpusDialect[] All = [OpenAIChat, AnthropicMessages, OpenAIResponses, OllamaChat];

    /// <summary>True for the dialects whose every history item is a <c>{"role":…}</c> message (not Responses' typed items).</summary>
    public bool RoleItems => Field == "messages";

    /// <summary>
    /// A request body whose history field holds <paramref name="items"/> (raw JSON); <paramref name="extra"/> are more
    /// top-level properties (raw, each led by a comma). Ollama's requests say <c>"stream":false</c> unless
    /// <paramref name="extra"/> sets <c>stream</c>, so every dialect answers JSON by default.
    /// </summary>
    public string Body(string items, string extra = "")
    {
        var model = this == AnthropicMessages ? "\"model\":\"claude-sonnet-4-5\",\"max_tokens\":256"
            : this == OllamaChat ? "\"model\":\"llama3.2\""
            : "\"model\":\"gpt-4o-mini\"";
        var stream = this == OllamaChat && !extra.Contains("\"stream\"", StringComparison.Ordinal) ? ",\"stream\":false" : "";
        return $"{{{model}{stream}{extra},\"{Field}\":{items}}}";
    }

    /// <summary>One user message whose content is <paramref name="content"/> (raw JSON).</summary>
    public static string User(string content) => $"{{\"role\":\"user\",\"content\":{content}}}";

    /// <summary>A valid one-message request saying <paramref name="text"/>.</summary>
    public string Valid(string text = "Hi") => Body($"[{User(JsonSerializer.Serialize(text))}]");

    /// <summary>A body with raw bytes in the middle of the user message's content string: prefix, the bytes, suffix.</summary>
    public byte[] WithRawContentBytes(ReadOnlySpan<byte> raw)
    {
        var text = Valid("before\u0001after");
        var parts = text.Split("\\u0001", StringSplitOptions.None);
        return [.. Encoding.UTF8.GetBytes(parts[0]), .. raw, .. Encoding.UTF8.GetBytes(parts[1])];
    }

    public override string ToString() => Label;
}

/// <summary>Checks of an error body against each API's documented error shape; each returns the problems found, empty when valid.</summary>
public static class ErrorShapes
{
    public static List<string> Check(ErrorShape shape, int status, byte[] body, string? code)
    {
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(body);
            root = document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return [$"not JSON: {Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 200)))}"];
        }

        return shape switch
        {
            ErrorShape.OpenAI => OpenAI(root, code),
            ErrorShape.Anthropic => Anthropic(root, status),
            _ => Ollama(root),
        };
    }

    /// <summary>The message the client reads, whatever the shape.</summary>
    public static string Message(ErrorShape shape, byte[] body)
    {
        using var document = JsonDocument.Parse(body);
        var root = document.RootElement;
        return shape == ErrorShape.Ollama
            ? root.GetProperty("error").GetString() ?? ""
            : root.GetProperty("error").GetProperty("message").GetString() ?? "";
    }

    public static List<string> OpenAI(JsonElement root, string? code)
    {
        var problems = new List<string>();
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object)
        {
            return ["no 'error' object"];
        }

        if (!error.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.String || message.GetString() is "")
        {
            problems.Add("error.message is not a non-empty string");
        }

        if (!error.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
        {
            problems.Add("error.type is not a string");
        }

        if (!error.TryGetProperty("param", out var param) || param.ValueKind is not (JsonValueKind.Null or JsonValueKind.String))
        {
            problems.Add("error.param is missing");
        }

        if (!error.TryGetProperty("code", out var actual) || actual.ValueKind is not (JsonValueKind.Null or JsonValueKind.String))
        {
            problems.Add("error.code is missing");
        }
        else if (code is not null && actual.GetString() != code)
        {
            problems.Add($"error.code is '{actual.GetString()}', expected '{code}'");
        }

        return problems;
    }

    public static List<string> Anthropic(JsonElement root, int status)
    {
        var problems = new List<string>();
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type", out var top) || top.GetString() != "error")
        {
            problems.Add("type is not \"error\"");
        }

        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object)
        {
            problems.Add("no 'error' object");
            return problems;
        }

        // Anthropic's documented error types by status.
        var expected = status switch
        {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            >= 500 => "api_error",
            _ => "invalid_request_error",
        };
        if (!error.TryGetProperty("type", out var type) || type.GetString() != expected)
        {
            problems.Add($"error.type is not '{expected}'");
        }

        if (!error.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.String || message.GetString() is "")
        {
            problems.Add("error.message is not a non-empty string");
        }

        return problems;
    }

    public static List<string> Ollama(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.String
            || error.GetString() is "")
        {
            return ["'error' is not a non-empty string"];
        }

        return [];
    }
}
