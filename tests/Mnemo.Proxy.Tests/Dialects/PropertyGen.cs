using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using Mnemo.Proxy.Dialects;

namespace Mnemo.Proxy.Tests.Dialects;

/// <summary>
/// FsCheck generators for the property tests: JSON text (as raw text, so escapes, duplicates and odd whitespace are the
/// generator's to choose), request bodies of each dialect, answers (streamed and whole) and chunkings.
/// </summary>
internal static class PropertyGen
{
    /// <summary>In every generated free text and every made-up name, so an error message quoting the body shows it.</summary>
    public const char Marker = 'ǂ';

    public static readonly Dialect[] Dialects = [.. new DialectRegistry().All];

    public static readonly Gen<Dialect> Dialect = Gen.Elements(Dialects);

    // Names the dialects read, top-level and inside items: values of the wrong type under them reach the most code.
    private static readonly string[] s_names =
    [
        "messages", "input", "system", "model", "stream", "role", "content", "tool_calls", "tool_call_id", "type", "text",
        "id", "name", "arguments", "function", "call_id", "output", "previous_response_id", "conversation", "tools", "images",
        "tool_use_id", "instructions", "max_tokens", "source", "image_url", "url", "thinking", "partial_json", "tool_name",
        "data", "media_type", "input_json", "refusal", "is_error", "options",
    ];

    private static readonly string[] s_words =
    [
        "user", "assistant", "system", "developer", "tool", "function", "text", "image_url", "image", "tool_use",
        "tool_result", "function_call", "function_call_output", "message", "input_text", "output_text", "reasoning",
        "base64", "thinking", "custom_tool_call", "web_search_call", "", " ",
    ];

    private static readonly string[] s_numbers = ["0", "-1", "3.25", "1e3", "12345678901234567890", "-0.0e-5", "1E400", "2"];

    private static readonly string[] s_whitespace = ["", "", "", " ", "\n  ", "\t", "\r\n"];

    /// <summary>Text oddities: JSON escapes, SSE and NDJSON framing inside strings, multi-byte UTF-8, a BOM, NUL.</summary>
    private static readonly string[] s_tricky =
    [
        "\r", "\n", "\r\n", "\"", "\\", "/", "\t", "\0", "\u2028", "é", "中", "😀", "\uFEFF", "data: ", "\n\n", "event: x",
        "[DONE]", "}", "{\"", "\\u0041", "\u007f", "\u0080", "\uFFFF", "𝄞",
    ];

    private static readonly JsonSerializerOptions s_relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly Gen<string> s_ws = Gen.Elements(s_whitespace);

    /// <summary>A valid (well-formed UTF-16) text: letters, oddities, any BMP character, astral characters; always holds the marker.</summary>
    public static readonly Gen<string> Text =
        Gen.Choose(0, 8).SelectMany(n => Gen.ArrayOf(
            Gen.Frequency(
                (6, Gen.Elements("a", "b", "z", "Q", " ", "7", "hello", " world")),
                (3, Gen.Elements(s_tricky)),
                (2, Gen.Choose(0x20, 0xD7FF).Select(c => ((char)c).ToString())),
                (1, Gen.Choose(0xE000, 0xFFFD).Select(c => ((char)c).ToString())),
                (1, Gen.Choose(0x10000, 0x10FFFF).Select(char.ConvertFromUtf32))),
            n))
        .Zip(Gen.Choose(0, 8), (parts, at) =>
        {
            // The marker at a random place between the parts (never inside a surrogate pair).
            var list = parts.ToList();
            list.Insert(Math.Min(at, list.Count), Marker.ToString());
            return string.Concat(list);
        });

    /// <summary>A JSON string literal (with its quotes) of <paramref name="text"/>, escaped in one of the ways a server may.</summary>
    public static Gen<string> Literal(string text) => Gen.Choose(0, 2).Select(style => Literal(text, style));

    public static string Literal(string text, int style) => style switch
    {
        0 => JsonSerializer.Serialize(text),
        1 => JsonSerializer.Serialize(text, s_relaxed),
        _ => "\"" + string.Concat(text.Select(c => $"\\u{(int)c:x4}")) + "\"",
    };

    // ---- Arbitrary JSON (for "the request parsers never throw") ----

    private static readonly Gen<string> s_name =
        Gen.Frequency(
            (8, Gen.Elements(s_names)),
            (1, Gen.Elements(s_names).Select(n => n.Length > 0 ? $"\\u{(int)n[0]:x4}{n[1..]}" : n)),
            (2, Text.Select(t => JsonSerializer.Serialize(t)[1..^1])),
            (1, Gen.Elements("\\ud800\\u0041", "x\\udfff", "cache_\\ud800")));

    private static readonly Gen<string> s_stringLiteral =
        Gen.Frequency(
            (5, Gen.Elements(s_words).Select(w => "\"" + w + "\"")),
            (1, Gen.Elements(s_words).Where(w => w.Length > 1).Select(w => $"\"\\u{(int)w[0]:x4}{w[1..]}\"")),
            (4, Text.SelectMany(Literal)),
            // Escapes of invalid UTF-16 (lone surrogates), a valid pair, NUL: valid JSON, not valid text.
            (2, Gen.Elements("\"\\ud800\"", "\"a\\udc00b\"", "\"\\ud83d\\ude00\"", "\"\\u0000\"", "\"\\ud800\\u0041\"", "\"x\\udfff\"")));

    private static readonly Gen<string> s_scalar =
        Gen.Frequency(
            (4, s_stringLiteral),
            (2, Gen.Elements(s_numbers)),
            (1, Gen.Elements("true", "false", "null")));

    /// <summary>A JSON value nested at most <paramref name="depth"/> deep, objects named mostly with the dialects' property names.</summary>
    public static Gen<string> Value(int depth) =>
        depth <= 0
            ? s_scalar
            : Gen.Frequency(
                (3, s_scalar),
                (1, Gen.Choose(0, 4).SelectMany(n => Gen.ArrayOf(Value(depth - 1), n)).SelectMany(ArrayOf)),
                (2, Object(depth - 1)),
                (2, Items(depth - 1)));

    /// <summary>An object of 0–5 properties (names may repeat).</summary>
    public static Gen<string> Object(int depth) =>
        Gen.Choose(0, 5).SelectMany(n => Gen.ArrayOf(Property(s_name, depth), n)).SelectMany(ObjectOf);

    /// <summary>An array of item-like objects: role/type/content names with the dialects' words, or wrong types.</summary>
    public static Gen<string> Items(int depth) =>
        Gen.Choose(0, 4).SelectMany(n => Gen.ArrayOf(
            Gen.Frequency(
                (6, Gen.Choose(0, 4).SelectMany(k => Gen.ArrayOf(Property(Gen.Elements("role", "type", "content", "text", "tool_calls", "call_id", "output", "name", "arguments"), depth), k)).SelectMany(ObjectOf)),
                (1, Value(Math.Max(0, depth - 1)))),
            n)).SelectMany(ArrayOf);

    /// <summary>A top-level object with the names a dialect splices into and reads (values of any type, names may repeat).</summary>
    public static readonly Gen<string> TopLevelObject =
        Gen.Choose(0, 6).SelectMany(n => Gen.ArrayOf(
            Gen.Frequency(
                (3, Gen.Elements("messages", "input").SelectMany(name => Gen.Frequency((3, Items(2)), (1, Value(2)), (1, s_stringLiteral)).Select(v => Pair(name, v)))),
                (2, Gen.Elements("stream", "previous_response_id", "conversation", "system", "model", "instructions").SelectMany(name => Value(2).Select(v => Pair(name, v)))),
                (2, Property(s_name, 2))),
            n)).SelectMany(ObjectOf);

    // ---- Valid requests (for the splice, and mutated for the parsers) ----

    /// <summary>
    /// A valid request of <paramref name="dialect"/>: its leading system items, its own items after them, or a plain-text
    /// input (Responses); and every other top-level property, whose values a splice must leave alone.
    /// </summary>
    /// <remarks>
    /// A turn's request (<paramref name="turn"/>) has at least one item of its own; with <paramref name="plain"/>, only
    /// user messages, whose every text another dialect carries over.
    /// </remarks>
    /// <summary>A valid request: also valid Unicode text (no lone surrogate escape, which ParseRequest refuses whole).</summary>
    public static Gen<RequestSpec> Request(Dialect dialect, bool turn = false, bool plain = false) =>
        AnyRequest(dialect, turn, plain).Where(r => !Mnemo.Proxy.Dialects.JsonEscapes.HasLoneSurrogate(System.Text.Encoding.UTF8.GetBytes(r.Body)));

    private static Gen<RequestSpec> AnyRequest(Dialect dialect, bool turn, bool plain)
    {
        var id = dialect.Id.ToString();
        var arrayName = id == "OpenAIResponses" ? "input" : "messages";
        var leading = id == "AnthropicMessages" ? Gen.Constant(Array.Empty<string>()) : Gen.Choose(0, 2).SelectMany(n => Gen.ArrayOf(SystemItem(id), n));
        var item = plain ? UserItem(id).Select(i => (Json: i, System: false)) : Gen.Frequency((8, Item(id).Select(i => (Json: i, System: false))), (1, SystemItem(id).Select(i => (Json: i, System: true))));
        var own = Gen.Choose(turn ? 1 : 0, turn ? 3 : 5).SelectMany(n => Gen.ArrayOf(item, n));
        var textInput = id == "OpenAIResponses"
            ? Gen.Frequency((2, Gen.Constant<string?>(null)), (1, Text.SelectMany(Literal).Select(s => (string?)s)))
            : Gen.Constant<string?>(null);
        var others = Others(id);
        return
            from l in leading
            from o in own
            from t in textInput
            from props in others
            from at in Gen.Choose(0, props.Length)
            from ws in s_ws
            select Build(dialect, arrayName, l, o, t, props, at, ws);
    }

    private static RequestSpec Build(Dialect dialect, string arrayName, string[] leadingItems, (string Json, bool System)[] ownItems, string? text, (string Name, string Value)[] others, int at, string ws)
    {
        // System items first among the own ones lead too: history goes after every system item of the array's start.
        var lead = ownItems.TakeWhile(i => i.System).Count();
        var leading = leadingItems.Concat(ownItems.Take(lead).Select(i => i.Json)).ToArray();
        var own = ownItems.Skip(lead).Select(i => i.Json).ToArray();
        var array = text ?? "[" + ws + string.Join("," + ws, leading.Concat(own)) + ws + "]";
        var props = others.Select(p => Pair(p.Name, p.Value)).ToList();
        props.Insert(at, Pair(arrayName, array));
        var body = "{" + ws + string.Join("," + ws, props) + ws + "}";
        return new RequestSpec(dialect, body, arrayName, text is null ? leading : [], text is null ? own : [], text, others);
    }

    private static Gen<(string Name, string Value)[]> Others(string dialect)
    {
        var text = Text.SelectMany(Literal);
        var common = new List<Gen<(string, string)>>
        {
            Gen.Elements("true", "false").Select(v => ("stream", v)),
            Gen.Elements("\"m\"", "\"gpt-4o-mini\"", "\"claude-sonnet-4-5\"", "\"llama3.2\"").Select(v => ("model", v)),
            Object(2).Select(v => ("metadata", v)),
            Gen.Elements("0.5", "1", "null").Select(v => ("temperature", v)),
            Gen.Constant(("tools", """[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]""")),
        };
        switch (dialect)
        {
            case "AnthropicMessages":
                common.Add(text.Select(v => ("system", v)));
                common.Add(text.Select(v => ("system", $$$$"""[{"type":"text","text":{{{{v}}}},"cache_control":{"type":"ephemeral"}}]""")));
                common.Add(Gen.Constant(("max_tokens", "256")));
                break;
            case "OpenAIResponses":
                common.Add(text.Select(v => ("instructions", v)));
                common.Add(Gen.Constant(("previous_response_id", "null")));
                common.Add(Gen.Constant(("store", "false")));
                break;
            case "OllamaChat":
                common.Add(Gen.Constant(("options", """{"temperature":0.1,"num_ctx":4096}""")));
                common.Add(Gen.Constant(("keep_alive", "\"5m\"")));
                break;
        }

        // Each name at most once: a repeated name is another property (the ambiguity tests cover it).
        return Gen.SubListOf(common.ToArray()).SelectMany(gens => Gen.CollectToArray(gens))
            .SelectMany(props => Gen.Shuffle(props.DistinctBy(p => p.Item1).ToArray()));
    }

    private static Gen<string> SystemItem(string dialect)
    {
        var text = Text.SelectMany(Literal);
        return dialect switch
        {
            "OpenAIResponses" => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"system","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"type":"message","role":"developer","content":[{"type":"input_text","text":{{{{t}}}}}]}""")),
            "OllamaChat" => text.Select(t => $$$$"""{"role":"system","content":{{{{t}}}}}"""),
            _ => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"system","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"content":[{"type":"text","text":{{{{t}}}}}],"role":"developer"}""")),
        };
    }

    /// <summary>A user message of the dialect: text, or text and an image.</summary>
    public static Gen<string> UserItem(string dialect)
    {
        var text = Text.SelectMany(Literal);
        return dialect switch
        {
            "AnthropicMessages" => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"role":"user","content":[{"type":"text","text":{{{{t}}}},"cache_control":{"type":"ephemeral"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}""")),
            "OpenAIResponses" => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"type":"message","role":"user","content":[{"type":"input_text","text":{{{{t}}}}},{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="}]}""")),
            "OllamaChat" => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}},"images":["iVBORw0KGgo="]}""")),
            _ => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"role":"user","content":[{"type":"text","text":{{{{t}}}}},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}""")),
        };
    }

    /// <summary>A non-system item of the dialect: user text or parts, an assistant answer or call, a tool result.</summary>
    public static Gen<string> Item(string dialect)
    {
        var text = Text.SelectMany(Literal);
        return dialect switch
        {
            "AnthropicMessages" => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"role":"user","content":[{"type":"text","text":{{{{t}}}},"cache_control":{"type":"ephemeral"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}"""),
                text.Select(t => $$$$"""{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":{{{{t}}}}}]}"""),
                text.Select(t => $$$$"""{"role":"assistant","content":[{"type":"text","text":{{{{t}}}}},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":{{{{t}}}}}}]}""")),
            "OpenAIResponses" => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"type":"message","role":"user","content":[{"type":"input_text","text":{{{{t}}}}},{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="}]}"""),
                text.Select(t => $$$$"""{"type":"message","role":"assistant","content":[{"type":"output_text","text":{{{{t}}}},"annotations":[]}]}"""),
                Gen.Constant("""{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}"""),
                text.Select(t => $$$$"""{"type":"function_call_output","call_id":"call_1","output":{{{{t}}}}}""")),
            "OllamaChat" => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}},"images":["iVBORw0KGgo="]}"""),
                text.Select(t => $$$$"""{"role":"assistant","content":{{{{t}}}},"tool_calls":[{"function":{"name":"get_weather","arguments":{"city":{{{{t}}}}}}}]}"""),
                text.Select(t => $$$$"""{"role":"tool","content":{{{{t}}}},"tool_name":"get_weather"}""")),
            _ => Gen.OneOf(
                text.Select(t => $$$$"""{"role":"user","content":{{{{t}}}}}"""),
                text.Select(t => $$$$"""{"role":"user","content":[{"type":"text","text":{{{{t}}}}},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}"""),
                text.Select(t => $$$$"""{"role":"assistant","content":{{{{t}}}}}"""),
                Gen.Constant("""{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}"""),
                text.Select(t => $$$$"""{"role":"tool","tool_call_id":"call_1","content":{{{{t}}}}}""")),
        };
    }

    // ---- Answers ----

    /// <summary>An answer of <paramref name="dialect"/> as its upstream sends it, streamed or whole, with the text it carries.</summary>
    public static Gen<Answer> Answer(Dialect dialect, bool stream) =>
        from deltas in Gen.Choose(0, 6).SelectMany(n => Gen.ArrayOf(Text.SelectMany(t => Gen.Choose(0, 2).Select(style => (Text: t, Literal: Literal(t, style)))), n))
        from calls in Gen.Choose(0, 2).SelectMany(n => Gen.ArrayOf(Text, n))
        from split in Gen.Choose(1, 4)
        from ends in Gen.ArrayOf(Gen.Elements("\n", "\r\n", "\r"), 64)
        from input in Gen.Choose(0, 5000)
        from output in Gen.Choose(0, 5000)
        select Answers.Make(dialect, stream, deltas, calls, split, ends, input, output);

    // ---- Byte-level damage ----

    /// <summary>Arbitrary bytes: random, or a soup of the tokens the parsers look for, or a valid body damaged.</summary>
    public static Gen<byte[]> Damage(byte[] valid) =>
        Gen.Frequency(
            (2, Gen.Choose(0, valid.Length).Select(n => valid[..n])),
            (2, Gen.Zip(Gen.Choose(0, Math.Max(0, valid.Length - 1)), Gen.Choose(1, 255)).Select(p => Flip(valid, p.Item1, p.Item2))),
            (1, Gen.Zip(Gen.Choose(0, valid.Length), Gen.Elements(s_soup)).Select(p => (byte[])[.. valid[..p.Item1], .. Encoding.UTF8.GetBytes(p.Item2), .. valid[p.Item1..]])));

    private static readonly string[] s_soup =
    [
        "data: ", "event: ", "\n", "\r", "\r\n", "\n\n", "{", "}", "[", "]", "\"", ":", ",", "[DONE]", "\"type\"", "\"choices\"",
        "\"delta\"", "\"content\"", "\"message\"", "\"done\":true", "\"response.completed\"", "\"content_block_delta\"",
        "\"text_delta\"", "\\u", "\\ud800", "0", "-1", "1e999", "true", "null", "\"messages\"", "\"input\"", "\"role\"",
        "\"stream\"", "\"tool_calls\"", "\"index\":0", "\"index\":99999999999", "\"index\":-1", "message_stop", "\uFEFF",
    ];

    public static readonly Gen<byte[]> Soup =
        Gen.Frequency(
            (1, Gen.Choose(0, 300).SelectMany(n => Gen.ArrayOf(Gen.Choose(0, 255).Select(b => (byte)b), n))),
            (3, Gen.Choose(0, 60).SelectMany(n => Gen.ArrayOf(Gen.Frequency((6, Gen.Elements(s_soup)), (1, Gen.Choose(0, 255).Select(b => ((char)b).ToString()))), n))
                .Select(parts => Encoding.UTF8.GetBytes(string.Concat(parts)))),
            (1, Gen.Choose(0, 60).SelectMany(n => Gen.ArrayOf(Gen.Choose(0, 255).Select(b => (byte)b), n))
                .Select(b => (byte[])[0xEF, 0xBB, 0xBF, .. b])));

    private static byte[] Flip(byte[] valid, int at, int mask)
    {
        var copy = (byte[])valid.Clone();
        if (copy.Length > 0)
        {
            copy[at] ^= (byte)mask;
        }

        return copy;
    }

    // ---- Chunkings ----

    /// <summary>
    /// Cut points (ascending, inside 1..length-1) splitting <paramref name="bytes"/>: every byte alone, a few random
    /// cuts, or cuts inside multi-byte UTF-8 sequences and between CR and LF plus random ones.
    /// </summary>
    public static Gen<int[]> Cuts(byte[] bytes)
    {
        var length = bytes.Length;
        if (length < 2)
        {
            return Gen.Constant(Array.Empty<int>());
        }

        var inner = Enumerable.Range(1, length - 1)
            .Where(i => (bytes[i] & 0xC0) == 0x80 || (bytes[i - 1] == '\r' && bytes[i] == '\n'))
            .ToArray();
        var random = Gen.Choose(0, 12).SelectMany(n => Gen.ArrayOf(Gen.Choose(1, length - 1), n));
        var gens = new List<(int, Gen<int[]>)>
        {
            (1, Gen.Constant(Enumerable.Range(1, length - 1).ToArray())),
            (3, random),
            (2, Gen.Choose(1, Math.Min(64, length)).Select(size => Enumerable.Range(1, (length - 1) / size).Select(k => k * size).ToArray())),
        };
        if (inner.Length > 0)
        {
            gens.Add((3, Gen.Zip(Gen.SubListOf(inner), random, (a, b) => a.Concat(b).ToArray())));
        }

        return Gen.Frequency(gens.ToArray()).Select(c => c.Distinct().Order().ToArray());
    }

    /// <summary>A case's text cut for the failure report (the seed FsCheck prints replays it whole).</summary>
    public static string Cap(string text) => text.Length <= 1500 ? text : text[..1500] + $"… ({text.Length} chars)";

    public static string Pair(string name, string value) => "\"" + name + "\":" + value;

    private static Gen<string> Property(Gen<string> name, int depth) => Gen.Zip(name, Value(depth), Pair);

    private static Gen<string> ObjectOf(string[] properties) => s_ws.Select(ws => "{" + ws + string.Join("," + ws, properties) + ws + "}");

    private static Gen<string> ArrayOf(string[] values) => s_ws.Select(ws => "[" + ws + string.Join("," + ws, values) + ws + "]");
}

/// <summary>A generated valid request and what its splice must keep.</summary>
internal sealed record RequestSpec(
    Dialect Dialect, string Body, string ArrayName, string[] Leading, string[] Own, string? TextInput, (string Name, string Value)[] Others)
{
    public override string ToString() => $"{Dialect.Id} {PropertyGen.Cap(Body)}";
}

/// <summary>A generated answer: its bytes, media type, the text its deltas add up to and the tool calls it makes.</summary>
internal sealed record Answer(Dialect Dialect, string MediaType, byte[] Bytes, string Text, string[] CallArguments)
{
    public override string ToString() => $"{Dialect.Id} {MediaType} {PropertyGen.Cap(JsonSerializer.Serialize(Encoding.UTF8.GetString(Bytes)))}";
}
