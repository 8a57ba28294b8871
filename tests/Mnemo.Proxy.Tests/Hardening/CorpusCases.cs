using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Tests.Common;
using CaseRun = Mnemo.Proxy.Tests.Hardening.BadInputCorpusTests.CaseRun;

namespace Mnemo.Proxy.Tests.Hardening;

/// <summary>The classes of bad input of issue 10 (numbered as in the task brief; 30b split from 30), each run against every dialect.</summary>
public static class CorpusCases
{
    private const string SessionHeader = "X-Session-Id";
    private const string TenantHeader = "X-Tenant-Id";
    private const string ApiKey = FunctionalTest.ApiKey;

    public static readonly CorpusCase[] All =
    [
        new("01 session id with invalid characters: 400 invalid_session_id", InvalidSessionCharactersAsync),
        new("02 session id of 129 characters: 400 invalid_session_id", SessionIdTooLongAsync),
        new("03 session header repeated: 400 invalid_session_id", SessionHeaderRepeatedAsync),
        new("04 unicode session id: 400", UnicodeSessionIdAsync),
        new("05 two Authorization headers with different keys: 400 ambiguous_credentials", TwoAuthorizationHeadersAsync),
        new("06 Authorization and x-api-key disagree: 400 ambiguous_credentials; agree: 200", AuthorizationAndApiKeyAsync),
        new("07 no API key in ApiKey tenancy: 401 missing_api_key", NoApiKeyAsync),
        new("08 tenant header missing, repeated or invalid: 400", TenantHeaderAsync, HeaderTenancy: true),
        new("09 bogus or repeated X-Mnemo-Mode, bogus X-Mnemo-Consistency: 400", MnemoHeadersAsync),
        new("10 malformed JSON: 400 invalid_request_body", MalformedJsonAsync),
        new("11 truncated body: 400 invalid_request_body", TruncatedBodyAsync),
        new("12 top level not an object: 400 invalid_request_body", TopLevelNotObjectAsync),
        new("13 history field of the wrong type: 400", HistoryFieldWrongTypeAsync),
        new("14 message not an object or without a string role: 400", BadMessageElementAsync),
        new("15 deep nesting: 400", DeepNestingAsync),
        new("16 UTF-8 BOM before the JSON: 400 invalid_request_body", ByteOrderMarkAsync),
        new("17 raw NUL byte in a string: 400", RawNulAsync),
        new("18 invalid UTF-8 in content: 400 invalid_request_body naming UTF-8", InvalidUtf8Async),
        new("19 escaped lone surrogate: 400 invalid_request_body (a pair and an escaped backslash are fine)", EscapedLoneSurrogateAsync),
        new("20 duplicate history property: 400 invalid_request_body", DuplicateHistoryPropertyAsync),
        new("21 empty history field: forwarded, nothing stored", EmptyHistoryAsync),
        new("22 only system messages: forwarded, nothing stored", OnlySystemAsync),
        new("23 gzip body: 415 unsupported_content_encoding", GzipBodyAsync),
        new("24 other content types: forwarded byte-identical, memory off", OtherContentTypesAsync),
        new("25 body over MaxRequestBodySize: 413 request_body_rejected", OversizeBodyAsync),
        new("26 turn over MaxTurnBytes: answered, not stored, counted", OversizeTurnAsync),
        new("27 headers over 32 KiB: 431 from Kestrel", OversizeHeadersAsync),
        new("28 CR or LF in a header value: 400 from Kestrel", CrLfInHeaderAsync),
        new("29 stalled upload: nothing stored, counted client_aborted", StalledUploadAsync),
        new("30 invalid chunked framing: 400 request_body_rejected", BadFramingAsync),
        new("30b Content-Length with Transfer-Encoding chunked: read as chunked (RFC 9112), forwarded with one framing", ContentLengthWithChunkedAsync),
        new("31 stream of the wrong type: 400 invalid_request_body", StreamWrongTypeAsync),
        new("32 upstream answer with invalid UTF-8 or a lone surrogate escape: passed on unchanged, nothing stored", UpstreamInvalidUtf8Async),
        new("33 session and mode headers never reach the upstream", MnemoHeadersNotForwardedAsync),
    ];

    private static async Task InvalidSessionCharactersAsync(CaseRun run)
    {
        var reply = await run.SendAsync(run.Dialect.Valid(), [(SessionHeader, "bad id!"), ("Authorization", "Bearer " + ApiKey)]);
        run.AssertError(reply, 400, "invalid_session_id");
        Assert.That(ErrorShapes.Message(run.Dialect.Shape, reply.Body), Does.Not.Contain("bad id"), "the message echoes the id");
    }

    private static async Task SessionIdTooLongAsync(CaseRun run)
    {
        var reply = await run.SendAsync(run.Dialect.Valid(), [(SessionHeader, new string('a', 129)), ("Authorization", "Bearer " + ApiKey)]);
        run.AssertError(reply, 400, "invalid_session_id");
    }

    private static async Task SessionHeaderRepeatedAsync(CaseRun run)
    {
        var reply = await run.SendAsync(run.Dialect.Valid(),
            [(SessionHeader, run.Session), (SessionHeader, run.NewSession()), ("Authorization", "Bearer " + ApiKey)]);
        run.AssertError(reply, 400, "invalid_session_id");
    }

    private static async Task UnicodeSessionIdAsync(CaseRun run)
    {
        // Sent as UTF-8 bytes on the wire. Kestrel lets them through; Mnemo's character rule refuses them.
        var reply = await run.SendAsync(run.Dialect.Valid(), [(SessionHeader, "sessão-😀"), ("Authorization", "Bearer " + ApiKey)]);
        run.AssertError(reply, 400, "invalid_session_id");
    }

    private static async Task TwoAuthorizationHeadersAsync(CaseRun run)
    {
        var reply = await run.SendAsync(run.Dialect.Valid(),
            [(SessionHeader, run.Session), ("Authorization", "Bearer sk-key-one"), ("Authorization", "Bearer sk-key-two")]);
        run.AssertError(reply, 400, "ambiguous_credentials");
        Assert.That(ErrorShapes.Message(run.Dialect.Shape, reply.Body), Does.Not.Contain("sk-key"), "the message echoes a key");
    }

    private static async Task AuthorizationAndApiKeyAsync(CaseRun run)
    {
        var reply = await run.SendAsync(run.Dialect.Valid(),
            [(SessionHeader, run.Session), ("Authorization", "Bearer sk-key-one"), ("x-api-key", "sk-key-two")]);
        run.AssertError(reply, 400, "ambiguous_credentials", what: "different keys");

        // The same key in both headers is one identity: answered and stored under its tenant.
        var same = run.NewSession();
        run.Allowed.Add(CaseRun.Slot(same));
        reply = await run.SendAsync(run.Dialect.Valid(),
            [(SessionHeader, same), ("Authorization", "Bearer " + ApiKey), ("x-api-key", ApiKey)]);
        run.AssertAnswered(reply, "the same key twice");
        await run.WaitForTurnsAsync(same, 1);
    }

    private static async Task NoApiKeyAsync(CaseRun run)
    {
        var reply = await run.SendAsync(run.Dialect.Valid(), [(SessionHeader, run.Session)]);
        run.AssertError(reply, 401, "missing_api_key", "Mnemo:Tenancy:Mode", "no credential");

        reply = await run.SendAsync(run.Dialect.Valid(), [(SessionHeader, run.Session), ("Authorization", "Bearer ")]);
        run.AssertError(reply, 401, "missing_api_key", "Mnemo:Tenancy:Mode", "an empty bearer token");
    }

    private static async Task TenantHeaderAsync(CaseRun run)
    {
        var auth = ("Authorization", "Bearer " + ApiKey);
        var reply = await run.SendAsync(run.Dialect.Valid(), [(SessionHeader, run.Session), auth]);
        run.AssertError(reply, 400, "missing_tenant", what: "missing");

        reply = await run.SendAsync(run.Dialect.Valid(), [(SessionHeader, run.Session), (TenantHeader, "t-one"), (TenantHeader, "t-two"), auth]);
        run.AssertError(reply, 400, "invalid_tenant", what: "repeated");

        foreach (var tenant in new[] { "bad tenant!", "t:colon", new string('t', 65) })
        {
            reply = await run.SendAsync(run.Dialect.Valid(), [(SessionHeader, run.Session), (TenantHeader, tenant), auth]);
            run.AssertError(reply, 400, "invalid_tenant", what: $"tenant '{tenant[..Math.Min(tenant.Length, 12)]}'");
        }
    }

    private static async Task MnemoHeadersAsync(CaseRun run)
    {
        var headers = run.MemoryHeaders();
        var reply = await run.SendAsync(run.Dialect.Valid(), [.. headers, ("X-Mnemo-Mode", "bogus")]);
        run.AssertError(reply, 400, "invalid_mnemo_mode", what: "bogus mode");

        reply = await run.SendAsync(run.Dialect.Valid(), [.. headers, ("X-Mnemo-Mode", "inject"), ("X-Mnemo-Mode", "record")]);
        run.AssertError(reply, 400, "invalid_mnemo_mode", what: "repeated mode");

        reply = await run.SendAsync(run.Dialect.Valid(), [.. headers, ("X-Mnemo-Consistency", "bogus")]);
        run.AssertError(reply, 400, "invalid_mnemo_consistency", what: "bogus consistency");
    }

    private static async Task MalformedJsonAsync(CaseRun run)
    {
        var field = run.Dialect.Field;
        var user = CorpusDialect.User("\"hi\"");
        string[] bodies =
        [
            "{\"model\":",
            $"{{\"{field}\":[}}",
            $"{{\"model\":\"m\",\"{field}\":[{user}],}}",
            $"{{\"model\":\"m\",\"{field}\":[{user},]}}",
            $"{{\"model\":\"m\",\"{field}\":[{user}]}}}}",
            $"{{\"model\":\"m\",\"{field}\":[{user}]}} trailing",
            $"{{'model':'m','{field}':[{user}]}}",
            $"{{model:\"m\",\"{field}\":[{user}]}}",
            $"{{\"model\":\"m\",/* note */\"{field}\":[{user}]}}",
            $"{{\"model\":\"m\",\"temperature\":NaN,\"{field}\":[{user}]}}",
            $"{{\"model\":\"m\",\"{field}\":[{{\"role\":\"user\",\"content\":\"unterminated}}]}}",
            "",
        ];
        foreach (var body in bodies)
        {
            var reply = await run.SendAsync(body);
            run.AssertError(reply, 400, "invalid_request_body", what: body);
        }
    }

    private static async Task TruncatedBodyAsync(CaseRun run)
    {
        var body = Encoding.UTF8.GetBytes(run.Dialect.Valid("A message that will be cut short somewhere along the way."));
        foreach (var cut in new[] { 1, 9, body.Length / 3, body.Length / 2, body.Length - 3, body.Length - 1 })
        {
            var reply = await run.SendAsync(body[..cut]);
            run.AssertError(reply, 400, "invalid_request_body", what: $"cut at {cut} of {body.Length}");
        }
    }

    private static async Task TopLevelNotObjectAsync(CaseRun run)
    {
        foreach (var body in new[] { "[]", $"[{CorpusDialect.User("\"hi\"")}]", "\"hello\"", "42", "null", "true" })
        {
            var reply = await run.SendAsync(body);
            run.AssertError(reply, 400, "invalid_request_body", what: body);
        }
    }

    private static async Task HistoryFieldWrongTypeAsync(CaseRun run)
    {
        // A string is a valid Responses input (one user message); for the others it is the wrong type.
        var values = run.Dialect.RoleItems ? new[] { "\"hi\"", "{}", "42", "null", "true" } : ["{}", "42", "null", "true"];
        foreach (var value in values)
        {
            var reply = await run.SendAsync(run.Dialect.Body(value));
            run.AssertError(reply, 400, "invalid_request_body", what: $"{run.Dialect.Field}: {value}");
        }
    }

    private static async Task BadMessageElementAsync(CaseRun run)
    {
        var items = new List<string> { "[\"hi\"]", "[42]", "[null]", "[[]]", $"[{CorpusDialect.User("\"hi\"")},\"and more\"]" };
        if (run.Dialect.RoleItems)
        {
            items.AddRange(["[{\"content\":\"hi\"}]", "[{\"role\":42,\"content\":\"hi\"}]", "[{\"role\":null,\"content\":\"hi\"}]"]);
        }

        foreach (var item in items)
        {
            var reply = await run.SendAsync(run.Dialect.Body(item));
            run.AssertError(reply, 400, "invalid_request_body", what: item);
        }
    }

    private static async Task DeepNestingAsync(CaseRun run)
    {
        const int depth = 100_000;
        var closed = CorpusDialect.User(new string('[', depth) + new string(']', depth));
        var open = CorpusDialect.User(new string('[', depth));
        foreach (var (what, item) in new[] { ("closed", closed), ("unclosed", open) })
        {
            var reply = await run.SendAsync(run.Dialect.Body($"[{item}]"));
            run.AssertError(reply, 400, "invalid_request_body", what: $"{depth} nested arrays, {what}");
        }
    }

    private static async Task ByteOrderMarkAsync(CaseRun run)
    {
        var reply = await run.SendAsync([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(run.Dialect.Valid())]);
        run.AssertError(reply, 400, "invalid_request_body");
    }

    private static async Task RawNulAsync(CaseRun run)
    {
        var reply = await run.SendAsync(run.Dialect.WithRawContentBytes([0x00]));
        run.AssertError(reply, 400, "invalid_request_body");
    }

    private static async Task InvalidUtf8Async(CaseRun run)
    {
        foreach (var bytes in new byte[][] { [0xFF, 0xFE], [0xC3, 0x28], [0xED, 0xA0, 0x80], [0xC0, 0xAF] })
        {
            var reply = await run.SendAsync(run.Dialect.WithRawContentBytes(bytes));
            run.AssertError(reply, 400, "invalid_request_body", "UTF-8", Convert.ToHexString(bytes));
        }
    }

    private static async Task EscapedLoneSurrogateAsync(CaseRun run)
    {
        foreach (var text in new[] { "\"half a pair: \\ud800 ends here\"", "\"low half alone: \\uDC00\"", "\"high then text: \\uD83Dx\"" })
        {
            var reply = await run.SendAsync(run.Dialect.Body($"[{CorpusDialect.User(text)}]"));
            run.AssertError(reply, 400, "invalid_request_body", what: text);
            Assert.That(ErrorShapes.Message(run.Dialect.Shape, reply.Body), Does.Contain("surrogate"));
        }

        await AssertNothingStoredAsync(run);

        // An escaped pair (an emoji as ensure_ascii serialisers write it) and an escaped backslash before "ud800" are text.
        run.Allowed.Add(CaseRun.Slot(run.Session));
        var fine = await run.SendAsync(run.Dialect.Body($"[{CorpusDialect.User("\"\\ud83d\\ude00 and \\\\ud800\"")}]"));
        run.AssertAnswered(fine);
        await run.WaitForTurnsAsync(run.Session, 1);
        var stored = (byte[])(await run.Db.ListGetByIndexAsync(CaseRun.TurnsKey(run.Session), 0))!;
        Assert.DoesNotThrow(() => JsonDocument.Parse(stored).Dispose(), "the stored element is not JSON");
        Assert.That(Encoding.UTF8.GetString(stored), Does.Contain("\\ud83d\\ude00"), "the escape is kept as sent");
    }

    private static async Task DuplicateHistoryPropertyAsync(CaseRun run)
    {
        var items = $"[{CorpusDialect.User("\"hi\"")}]";
        var reply = await run.SendAsync(run.Dialect.Body(items, $",\"{run.Dialect.Field}\":{items}"));
        run.AssertError(reply, 400, "invalid_request_body");
    }

    private static async Task EmptyHistoryAsync(CaseRun run)
    {
        var body = run.Dialect.Body("[]");
        var reply = await run.SendAsync(body);
        Assert.That(reply.Status, Is.EqualTo(200), reply.Text);
        Assert.That(run.Upstream.Requests, Has.Count.EqualTo(1));
        Assert.That(run.Upstream.LastRequest.BodyText, Is.EqualTo(body), "forwarded as sent");
        await AssertNothingStoredAsync(run);
    }

    private static async Task OnlySystemAsync(CaseRun run)
    {
        var body = run.Dialect == CorpusDialect.AnthropicMessages ? run.Dialect.Body("[]", ",\"system\":\"Be brief.\"")
            : run.Dialect == CorpusDialect.OpenAIResponses ? run.Dialect.Body("[{\"role\":\"developer\",\"content\":\"Be brief.\"}]")
            : run.Dialect.Body("[{\"role\":\"system\",\"content\":\"Be brief.\"}]");
        var reply = await run.SendAsync(body);
        Assert.That(reply.Status, Is.EqualTo(200), reply.Text);
        Assert.That(run.Upstream.Requests, Has.Count.EqualTo(1));
        Assert.That(run.Upstream.LastRequest.BodyText, Is.EqualTo(body), "forwarded as sent");
        await AssertNothingStoredAsync(run);
    }

    private static async Task GzipBodyAsync(CaseRun run)
    {
        var body = CaseRun.Gzip(Encoding.UTF8.GetBytes(run.Dialect.Valid()));
        var reply = await run.SendAsync(body, [.. run.MemoryHeaders(), ("Content-Encoding", "gzip")]);
        run.AssertError(reply, 415, "unsupported_content_encoding");
    }

    private static async Task OtherContentTypesAsync(CaseRun run)
    {
        var form = Encoding.ASCII.GetBytes("model=gpt-4o-mini&messages=hello+there");
        var text = Encoding.UTF8.GetBytes(run.Dialect.Valid("plain text that looks like JSON"));
        foreach (var (type, body) in new[] { ("application/x-www-form-urlencoded", form), ("text/plain", text) })
        {
            run.Upstream.Reset();
            var reply = await run.SendAsync(body, contentType: type);
            Assert.That(reply.Status, Is.EqualTo(200), $"{type}: {reply.Text}");
            Assert.That(run.Upstream.Requests, Has.Count.EqualTo(1), type);
            Assert.That(run.Upstream.LastRequest.Body, Is.EqualTo(body), $"{type}: forwarded byte-identical");
            Assert.That(reply.Header("X-Mnemo-Memory"), Is.EqualTo("off"), type);
        }

        await AssertNothingStoredAsync(run);

        // No Content-Type at all is taken for JSON: memory applies.
        var json = run.NewSession();
        run.Allowed.Add(CaseRun.Slot(json));
        var answered = await run.SendAsync(run.Dialect.Valid(), run.MemoryHeaders(json), contentType: null);
        run.AssertAnswered(answered, "no Content-Type");
        Assert.That(answered.Header("X-Mnemo-Memory"), Is.EqualTo("empty"), "no Content-Type");
        await run.WaitForTurnsAsync(json, 1);
    }

    private static async Task OversizeBodyAsync(CaseRun run)
    {
        // Needs Kestrel:Limits:MaxRequestBodySize to take effect: ASP.NET Core does not bind Kestrel:Limits from
        // configuration by itself (dotnet/aspnetcore#4765), so with today's AddMnemo this 1 MiB + 4 KiB body is accepted.
        var body = Encoding.UTF8.GetBytes(run.Dialect.Valid(new string('a', MaxBody + 4096)));
        var reply = await run.SendAsync(body);
        run.AssertError(reply, 413, "request_body_rejected", what: "Content-Length");

        var headers = run.MemoryHeaders();
        headers.AddRange([("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]);
        reply = await run.SendRawAsync(run.Request(headers, RawHttp.Chunked(body, 64 * 1024), contentLength: false));
        run.AssertError(reply, 413, "request_body_rejected", what: "chunked");
    }

    private const int MaxBody = 1024 * 1024;

    private static async Task OversizeTurnAsync(CaseRun run)
    {
        var label = ("dialect", run.Dialect.Label);
        var before = await run.MetricsAsync();
        var reply = await run.SendAsync(run.Dialect.Valid(new string('b', 100 * 1024)));
        run.AssertAnswered(reply);

        // Counted once the response has completed: wait for the request to show up under any outcome.
        await Eventually.ValueAsync(
            async () => CaseRun.Sum(await run.MetricsAsync(), "mnemo_requests_total", label) - CaseRun.Sum(before, "mnemo_requests_total", label),
            d => d >= 1, "the request to be counted");
        var after = await run.MetricsAsync();
        double Delta(string name, params (string, string)[] labels) => CaseRun.Sum(after, name, labels) - CaseRun.Sum(before, name, labels);
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(Delta("mnemo_requests_total", label, ("outcome", "completed")), Is.EqualTo(1), "mnemo_requests_total outcome=completed");
            Assert.That(Delta("mnemo_requests_total", label, ("outcome", "upstream_error")), Is.Zero, "counted upstream_error");
            Assert.That(Delta("mnemo_turns_not_stored_total", ("reason", "too_large")), Is.EqualTo(1), "mnemo_turns_not_stored_total{reason=\"too_large\"}");
            await AssertNothingStoredAsync(run);
        });
    }

    private static async Task OversizeHeadersAsync(CaseRun run)
    {
        var reply = await run.SendAsync(run.Dialect.Valid(), [.. run.MemoryHeaders(), ("X-Padding", new string('p', 40 * 1024))]);
        run.AssertKestrelReject(reply, 431);
    }

    private static async Task CrLfInHeaderAsync(CaseRun run)
    {
        foreach (var (what, value) in new[] { ("CR", "a\rb"), ("LF", "a\nb"), ("CR LF then a non-header line", "a\r\nb") })
        {
            var reply = await run.SendAsync(run.Dialect.Valid(), [(SessionHeader, value), ("Authorization", "Bearer " + ApiKey)]);
            run.AssertKestrelReject(reply, 400, what);
        }
    }

    private static async Task StalledUploadAsync(CaseRun run)
    {
        var label = ("dialect", run.Dialect.Label);
        var before = await run.MetricsAsync();
        var headers = run.MemoryHeaders();
        headers.AddRange([("Content-Type", "application/json"), ("Content-Length", "1000")]);
        var request = run.Request(headers, Encoding.ASCII.GetBytes("{\"model\":\""), contentLength: false);
        await RawHttp.SendAndAbandonAsync(run.Proxy.ProxyUrl, request, TimeSpan.FromSeconds(1));

        var aborted = await Eventually.ValueAsync(
            async () => CaseRun.Sum(await run.MetricsAsync(), "mnemo_requests_total", label) - CaseRun.Sum(before, "mnemo_requests_total", label),
            d => d >= 1, "the stalled request to be counted");
        Assert.That(aborted, Is.EqualTo(1));
        var after = await run.MetricsAsync();
        Assert.That(CaseRun.Sum(after, "mnemo_requests_total", label, ("outcome", "client_aborted"))
            - CaseRun.Sum(before, "mnemo_requests_total", label, ("outcome", "client_aborted")), Is.EqualTo(1), "outcome=client_aborted");
        Assert.That(run.Upstream.Requests, Is.Empty, "forwarded");
        await AssertNothingStoredAsync(run);
    }

    private static async Task BadFramingAsync(CaseRun run)
    {
        // Kestrel finds broken chunk framing only when the body is read, so Mnemo, reading it, answers in the dialect's shape.
        var body = Encoding.UTF8.GetBytes(run.Dialect.Valid());
        var headers = run.MemoryHeaders();
        headers.AddRange([("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]);

        var notHex = run.Request(headers, [.. "zz\r\n"u8, .. body, .. "\r\n0\r\n\r\n"u8], contentLength: false);
        run.AssertError(await run.SendRawAsync(notHex), 400, "request_body_rejected", what: "a chunk size that is not hex");

        var badSuffix = run.Request(headers, [.. Encoding.ASCII.GetBytes($"{body.Length:x}\r\n"), .. body, .. "XX0\r\n\r\n"u8], contentLength: false);
        run.AssertError(await run.SendRawAsync(badSuffix), 400, "request_body_rejected", what: "chunk data not followed by CRLF");
    }

    private static async Task ContentLengthWithChunkedAsync(CaseRun run)
    {
        var body = Encoding.UTF8.GetBytes(run.Dialect.Valid());
        var headers = run.MemoryHeaders();
        headers.AddRange([("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"),
            ("Content-Length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        var reply = await run.SendRawAsync(run.Request(headers, RawHttp.Chunked(body, 16), contentLength: false));

        // RFC 9112 6.3: Transfer-Encoding wins and Kestrel drops the Content-Length, so no one downstream can read the
        // body with the other framing: Mnemo forwards the decoded bytes with a length of its own, and the turn counts once.
        run.Allowed.Add(CaseRun.Slot(run.Session));
        run.AssertAnswered(reply);
        var forwarded = run.Upstream.LastRequest;
        Assert.That(forwarded.Body, Is.EqualTo(body), "the chunks, decoded");
        Assert.That(forwarded.Headers.Keys, Has.None.EqualTo("Transfer-Encoding").IgnoreCase, "one framing upstream");
        await run.WaitForTurnsAsync(run.Session, 1);
    }

    private static async Task StreamWrongTypeAsync(CaseRun run)
    {
        var items = $"[{CorpusDialect.User("\"hi\"")}]";
        foreach (var value in new[] { "\"yes\"", "1", "{}" })
        {
            var reply = await run.SendAsync(run.Dialect.Body(items, $",\"stream\":{value}"));
            run.AssertError(reply, 400, "invalid_request_body", what: "stream: " + value);
        }
    }

    private static async Task UpstreamInvalidUtf8Async(CaseRun run)
    {
        var fixture = Encoding.UTF8.GetBytes(File.ReadAllText(FakeUpstream.FixturePath(run.Dialect.Folder, DefaultJson(run.Dialect))));
        var at = fixture.AsSpan().IndexOf(Encoding.UTF8.GetBytes(run.Dialect.AnswerText)) + 2;

        // Raw bytes that are not UTF-8, and an escape of half a surrogate pair (JSON grammar, but no character).
        foreach (var bad in new byte[][] { [0xFF, 0xFE, 0xC3, 0x28, 0xED, 0xA0, 0x80], "\\ud800"u8.ToArray() })
        {
            byte[] answer = [.. fixture[..at], .. bad, .. fixture[at..]];
            run.Upstream.RawJsonAnswer = answer;

            var reply = await run.SendAsync(run.Dialect.Valid());
            Assert.That(reply.Status, Is.EqualTo(200));
            Assert.That(reply.Body, Is.EqualTo(answer), "the upstream's bytes, unchanged");
        }

        await AssertNothingStoredAsync(run);
    }

    private static async Task MnemoHeadersNotForwardedAsync(CaseRun run)
    {
        run.Allowed.Add(CaseRun.Slot(run.Session));
        var reply = await run.SendAsync(run.Dialect.Valid(), [.. run.MemoryHeaders(), ("X-Mnemo-Mode", "inject"), ("X-Mnemo-Consistency", "replica")]);
        run.AssertAnswered(reply);
        await run.WaitForTurnsAsync(run.Session, 1);
        var forwarded = run.Upstream.LastRequest.Headers;
        Assert.That(forwarded.Keys, Has.None.EqualTo(SessionHeader).IgnoreCase, "the session id reached the upstream");
        Assert.That(forwarded.Keys, Has.None.EqualTo("X-Mnemo-Mode").IgnoreCase);
        Assert.That(forwarded.Keys, Has.None.EqualTo("X-Mnemo-Consistency").IgnoreCase);
    }

    private static string DefaultJson(CorpusDialect dialect) => dialect.Folder switch
    {
        "OpenAIChat" => "completion.json",
        "AnthropicMessages" => "message.json",
        "OpenAIResponses" => "response.json",
        _ => "chat.json",
    };

    /// <summary>
    /// Nothing of the run's session reached Redis. Once every request of the case is counted, any turn of the case is
    /// queued; a marker turn on another session, queued behind it and written in order, is then awaited.
    /// </summary>
    private static async Task AssertNothingStoredAsync(CaseRun run)
    {
        await run.AllCountedAsync();
        var marker = run.NewSession();
        run.Allowed.Add(CaseRun.Slot(marker));
        var upstream = run.Upstream;
        upstream.Reset();
        var reply = await run.SendAsync(run.Dialect.Valid("marker"), run.MemoryHeaders(marker));
        Assert.That(reply.Status, Is.EqualTo(200), "the marker request");
        await run.WaitForTurnsAsync(marker, 1);
        Assert.That(await run.Db.KeyExistsAsync(CaseRun.TurnsKey(run.Session)), Is.False, "the case's turn was stored");
    }
}
