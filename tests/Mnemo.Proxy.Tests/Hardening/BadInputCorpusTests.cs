using System.IO.Compression;
using System.Text;
using Mnemo.Proxy.Tests.Common;
using StackExchange.Redis;

namespace Mnemo.Proxy.Tests.Hardening;

/// <summary>
/// The bad-input corpus (issue 10): each class of bad input against each of the four dialects, through one real proxy
/// (1 MiB body limit, 64 KiB turn limit, API-key tenancy) and a second one with header tenancy. Each case asserts what
/// the client sees (status, the dialect's error shape and code, or what the upstream received), that no Redis key was
/// created, and that the proxy is still healthy: ready, and a valid memory request on a fresh session is answered and stored.
/// </summary>
public sealed class BadInputCorpusTests : FunctionalTest
{
    private const string SessionHeader = "X-Session-Id";
    private const string TenantHeader = "X-Tenant-Id";
    private const int MaxRequestBodySize = 1024 * 1024;

    private ProxyHost _proxy = null!;
    private ProxyHost _headerTenancy = null!;

    public static IEnumerable<TestCaseData> Cases() =>
        from @case in CorpusCases.All
        from dialect in CorpusDialect.All
        select new TestCaseData(dialect, @case).SetArgDisplayNames(dialect.Label, @case.Name);

    [OneTimeSetUp]
    public async Task StartProxiesAsync()
    {
        _proxy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Kestrel:Limits:MaxRequestBodySize"] = MaxRequestBodySize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Mnemo:Memory:MaxTurnBytes"] = "65536",
        });
        _headerTenancy = await StartProxyAsync(new Dictionary<string, string?>
        {
            ["Kestrel:Limits:MaxRequestBodySize"] = MaxRequestBodySize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Mnemo:Memory:MaxTurnBytes"] = "65536",
            ["Mnemo:Tenancy:Mode"] = "Header",
        });
    }

    [OneTimeTearDown]
    public async Task StopProxiesAsync()
    {
        await _headerTenancy.DisposeAsync();
        await _proxy.DisposeAsync();
    }

    [TestCaseSource(nameof(Cases))]
    public async Task BadInput_EachDialect_AnsweredInItsShapeNothingStoredProxyHealthy(CorpusDialect dialect, CorpusCase @case)
    {
        var proxy = @case.HeaderTenancy ? _headerTenancy : _proxy;
        var run = new CaseRun(this, dialect, proxy, "c-" + Guid.NewGuid().ToString("N")[..12])
        {
            CountedAtStart = CaseRun.Sum(await proxy.Management.GetStringAsync("/metrics"), "mnemo_requests_total"),
        };
        await @case.Run(run);

        // Every request of the case answered and counted: a turn it wrongly queued is queued before the health check's.
        await run.AllCountedAsync();
        if (run.Allowed.Count == 0)
        {
            Assert.That(await KeyCountAsync(), Is.Zero, "a Redis key was created");
        }

        await AssertHealthyAsync(run);
    }

    /// <summary>Ready on the management port, a valid memory request on a fresh session answered and stored; then no key but the allowed sessions'.</summary>
    private async Task AssertHealthyAsync(CaseRun run)
    {
        var proxy = run.Proxy;
        var ready = await proxy.Management.GetAsync("/healthz/ready");
        Assert.That((int)ready.StatusCode, Is.EqualTo(200), "/healthz/ready after the case");

        var fresh = "h-" + Guid.NewGuid().ToString("N")[..12];
        var headers = run.MemoryHeaders(fresh);
        string slot;
        if (run.Proxy == _headerTenancy)
        {
            headers.Add((TenantHeader, "t-health"));
            slot = "t-health:" + fresh;
        }
        else
        {
            slot = Tenant(ApiKey) + ":" + fresh;
        }

        var reply = await run.SendAsync(run.Dialect.Valid("Are you still there?"), headers);
        Assert.That(reply.Status, Is.EqualTo(200), "a valid memory request after the case: " + reply.Text);
        await Eventually.ValueAsync(() => Redis.Db.ListLengthAsync($"mnemo:v1:{{{slot}}}:turns"), n => n == 1, "the healthy request's turn");

        var allowed = run.Allowed.Append(slot).Select(s => "{" + s + "}").ToList();
        var keys = new List<string>();
        await foreach (var key in Redis.Server.KeysAsync(pattern: "*"))
        {
            keys.Add(key.ToString());
        }

        Assert.That(keys.Where(k => !allowed.Any(a => k.Contains(a, StringComparison.Ordinal))), Is.Empty, "keys of no allowed session");
    }

    /// <summary>One case against one dialect: the proxy, a fresh session id, and the sessions allowed to have keys.</summary>
    public sealed class CaseRun(BadInputCorpusTests test, CorpusDialect dialect, ProxyHost proxy, string session)
    {
        public CorpusDialect Dialect { get; } = dialect;

        public ProxyHost Proxy { get; } = proxy;

        public string Session { get; } = session;

        public FakeUpstream Upstream => test.Upstream;

        public IDatabase Db => test.Redis.Db;

        /// <summary>Slots (<c>tenant:session</c>) the case expects keys for; empty = no key at all.</summary>
        public List<string> Allowed { get; } = [];

        /// <summary>Every request the proxy had counted before the case.</summary>
        public double CountedAtStart { get; init; }

        /// <summary>Requests the case sent with <see cref="SendAsync(byte[], IEnumerable{ValueTuple{string, string}}?, string?)"/> or <see cref="SendRawAsync"/>.</summary>
        public int Sent { get; private set; }

        /// <summary>
        /// Waits until the proxy has counted every request the case sent: a request is counted after its turn, if any,
        /// was queued, so a turn queued after this is queued behind the case's.
        /// </summary>
        public Task<double> AllCountedAsync() => Eventually.ValueAsync(
            async () => Sum(await MetricsAsync(), "mnemo_requests_total") - CountedAtStart, n => n >= Sent, $"the case's {Sent} requests to be counted");

        public string NewSession() => "c-" + Guid.NewGuid().ToString("N")[..12];

        public static string TurnsKey(string session, string apiKey = ApiKey) => FunctionalTest.TurnsKey(session, apiKey);

        public static string Slot(string session, string apiKey = ApiKey) => Tenant(apiKey) + ":" + session;

        public Task<long> WaitForTurnsAsync(string session, long n, string apiKey = ApiKey) => test.WaitForTurnsAsync(session, n, apiKey);

        /// <summary>The usual headers of a memory request: this run's session and the API key.</summary>
        public List<(string Name, string Value)> MemoryHeaders(string? session = null) =>
            [(SessionHeader, session ?? Session), ("Authorization", "Bearer " + ApiKey)];

        public Task<Reply> SendAsync(string body, IEnumerable<(string Name, string Value)>? headers = null, string? contentType = "application/json") =>
            SendAsync(Encoding.UTF8.GetBytes(body), headers, contentType);

        /// <summary>
        /// A request on a bare socket: <paramref name="headers"/> (default <see cref="MemoryHeaders"/>) as given, repeats
        /// and raw bytes included, plus Content-Type (unless null) and Content-Length.
        /// </summary>
        public Task<Reply> SendAsync(byte[] body, IEnumerable<(string Name, string Value)>? headers = null, string? contentType = "application/json")
        {
            var all = (headers ?? MemoryHeaders()).ToList();
            if (contentType is not null)
            {
                all.Add(("Content-Type", contentType));
            }

            Sent++;
            return RawHttp.SendAsync(Proxy.ProxyUrl, RawHttp.Request(Proxy.ProxyUrl, Dialect.Path, all, body));
        }

        public Task<Reply> SendRawAsync(byte[] request)
        {
            Sent++;
            return RawHttp.SendAsync(Proxy.ProxyUrl, request);
        }

        public byte[] Request(IEnumerable<(string Name, string Value)> headers, byte[] body, bool contentLength = true) =>
            RawHttp.Request(Proxy.ProxyUrl, Dialect.Path, headers, body, contentLength);

        /// <summary>Mnemo answered: the status, the dialect's error shape with <paramref name="code"/> (where the shape has one), nothing forwarded.</summary>
        public void AssertError(Reply reply, int status, string code, string? messageContains = null, string? what = null)
        {
            var label = what is null ? "" : what + ": ";
            Assert.That(reply.Status, Is.EqualTo(status), label + "status; body: " + reply.Text);
            Assert.That(reply.Header("content-type"), Does.StartWith("application/json"), label + "content type");
            Assert.That(ErrorShapes.Check(Dialect.Shape, status, reply.Body, code), Is.Empty, label + "error shape; body: " + reply.Text);
            if (messageContains is not null)
            {
                Assert.That(ErrorShapes.Message(Dialect.Shape, reply.Body), Does.Contain(messageContains), label + "message");
            }

            Assert.That(Upstream.Requests, Is.Empty, label + "a rejected request reached the upstream");
        }

        /// <summary>Kestrel answered before Mnemo saw the request: the status, no body, nothing forwarded.</summary>
        public void AssertKestrelReject(Reply reply, int status, string? what = null)
        {
            var label = what is null ? "" : what + ": ";
            Assert.That(reply.Status, Is.EqualTo(status), label + "status; body: " + reply.Text);
            Assert.That(reply.Body, Is.Empty, label + "Kestrel's reject has no body");

            // Mnemo never saw it, so need not count it.
            Sent--;
            Assert.That(Upstream.Requests, Is.Empty, label + "a rejected request reached the upstream");
        }

        /// <summary>The fake upstream's JSON answer reached the client whole.</summary>
        public void AssertAnswered(Reply reply, string? what = null)
        {
            var label = what is null ? "" : what + ": ";
            Assert.That(reply.Status, Is.EqualTo(200), label + "status; body: " + reply.Text);
            Assert.That(reply.Text, Does.Contain(Dialect.AnswerText), label + "the upstream's answer");
        }

        public async Task<string> MetricsAsync() => await Proxy.Management.GetStringAsync("/metrics");

        /// <summary>The sum of a metric's series whose labels include all of <paramref name="labels"/>.</summary>
        public static double Sum(string exposition, string name, params (string Label, string Value)[] labels)
        {
            var total = 0.0;
            foreach (var line in exposition.Split('\n'))
            {
                if (!line.StartsWith(name, StringComparison.Ordinal) || line.Length == name.Length || line[name.Length] is not ('{' or ' '))
                {
                    continue;
                }

                var space = line.LastIndexOf(' ');
                var series = line[..space];
                if (labels.All(l => series.Contains($"{l.Label}=\"{l.Value}\"", StringComparison.Ordinal)))
                {
                    total += double.Parse(line[(space + 1)..], System.Globalization.CultureInfo.InvariantCulture);
                }
            }

            return total;
        }

        public static byte[] Gzip(byte[] data)
        {
            using var output = new MemoryStream();
            using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
            {
                gzip.Write(data);
            }

            return output.ToArray();
        }
    }
}

/// <summary>One class of bad input; <see cref="Run"/> sends it in the run's dialect and asserts what the client and the upstream saw.</summary>
public sealed record CorpusCase(string Name, Func<BadInputCorpusTests.CaseRun, Task> Run, bool HeaderTenancy = false)
{
    public override string ToString() => Name;
}
