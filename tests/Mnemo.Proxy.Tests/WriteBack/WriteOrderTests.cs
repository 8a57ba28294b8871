using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Metrics;
using Mnemo.Proxy.Sessions;
using Mnemo.Proxy.Tests.Common;
using Mnemo.Proxy.WriteBack;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Mnemo.Proxy.Tests.WriteBack;

/// <summary>
/// A session's turns are written in the order their answers ended on the replica (the order they became visible),
/// whatever the timing of their requests' completions.
/// </summary>
public sealed class WriteOrderTests : FunctionalTest
{
    private static readonly SessionKey s_session = new("t", "order");

    [Test]
    public async Task CompletionOfTheFirstTurnDelayed_TheSecondTurnWaitsForIt_AndBothAreStoredInTheOrderTheirAnswersEnded()
    {
        var gates = new CompletionGates();
        await using var proxy = await StartProxyAsync(services: gates.Register);
        // Two connections: a held completion keeps its connection until it has run (Kestrel runs completion callbacks
        // before reading the connection's next request).
        using var first = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = proxy.ProxyUrl };
        using var second = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = proxy.ProxyUrl };

        var held = gates.Hold("q1");
        var request = ProxyHost.Chat(UserTurn("question 1"), session: "order");
        request.Headers.Add(CompletionGates.Header, "q1");
        using (var response = await first.SendAsync(request))
        {
            // The whole answer has reached the client; the request's completion is what waits.
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            await response.Content.ReadAsByteArrayAsync();
        }

        await held.Reached;
        using (var response = await second.SendAsync(ProxyHost.Chat(UserTurn("question 2"), session: "order")))
        {
            await response.Content.ReadAsByteArrayAsync();
            Assert.That(Header(response, "X-Mnemo-Memory"), Is.EqualTo("hit"), "the first turn was visible the moment its answer ended");
        }

        Assert.That(Upstream.LastRequest.Messages().Where(m => m.Role == "user").Select(m => m.Content), Is.EqualTo(new[] { "question 1", "question 2" }));

        // The second request has completed (counted only after its turn was handed on), the first has not.
        await Eventually.TrueAsync(
            async () => WriteBackTests.Metric(await proxy.Management.GetStringAsync("/metrics"), "mnemo_requests_total{dialect=\"openai-chat\",memory=\"hit\",outcome=\"completed\"}") == 1,
            "the second request to complete");
        held.Release();

        var turns = await Eventually.ValueAsync(() => StoredTurnsAsync("order"), t => t.Length == 2, "both turns written");
        Assert.That(turns.Select(t => t.GetProperty("messages")[0].GetProperty("content").GetString()), Is.EqualTo(new[] { "question 1", "question 2" }),
            "the turns in the order their answers ended, not the order their requests completed");
    }

    [Test]
    public void Queue_TurnsReadyOutOfOrder_ReachTheWriterInTheOrderTheyWereHeld()
    {
        var queue = NewQueue();
        var (a, b, c) = (Turns.Make(s_session, "a"), Turns.Make(s_session, "b"), Turns.Make(s_session, "c"));
        queue.Hold(a);
        queue.Hold(b);
        queue.Hold(c);

        queue.Ready(c);
        queue.Ready(b);
        Assert.That(Drain(queue), Is.Empty, "nothing goes while the oldest is undecided");
        Assert.That(queue.Depth, Is.Zero);

        queue.Ready(a);
        Assert.That(Drain(queue), Is.EqualTo(new[] { a, b, c }));
        Assert.That(queue.Depth, Is.EqualTo(3));
    }

    [Test]
    public void Queue_OldestWithdrawn_TheReadyTurnsBehindItGoOn()
    {
        var queue = NewQueue();
        var (a, b) = (Turns.Make(s_session, "a"), Turns.Make(s_session, "b"));
        queue.Hold(a);
        queue.Hold(b);
        queue.Ready(b);
        Assert.That(Drain(queue), Is.Empty);

        queue.Withdraw(a);
        Assert.That(Drain(queue), Is.EqualTo(new[] { b }));
        Assert.That(queue.Pending.Snapshot(s_session), Is.EqualTo(new[] { b }), "still read until written");
    }

    [Test]
    public void Queue_OtherSessions_AreNotHeldUp()
    {
        var queue = NewQueue();
        var a = Turns.Make(s_session, "a");
        var other = Turns.Make(new SessionKey("t", "other"), "x");
        queue.Hold(a);
        queue.Hold(other);
        queue.Ready(other);
        Assert.That(Drain(queue), Is.EqualTo(new[] { other }));
    }

    [Test]
    public void Queue_Settle_LetsGoOfTurnsWhoseRequestsNeverCompleted_AndHandsOnTheRest()
    {
        var queue = NewQueue();
        var (a, b) = (Turns.Make(s_session, "a"), Turns.Make(s_session, "b"));
        queue.Hold(a);
        queue.Hold(b);
        queue.Ready(b);

        Assert.That(queue.Settle(), Is.EqualTo(1));
        Assert.That(Drain(queue), Is.EqualTo(new[] { b }));
        Assert.That(queue.Pending.Snapshot(s_session), Is.EqualTo(new[] { b }));
    }

    private static WriteBackQueue NewQueue() =>
        new(Options.Create(new WriteBackOptions()), new MnemoMetrics(), NullLogger<WriteBackQueue>.Instance);

    private static List<Turn> Drain(WriteBackQueue queue)
    {
        var turns = new List<Turn>();
        while (queue.Reader.TryRead(out var turn))
        {
            turns.Add(turn);
        }

        return turns;
    }

    /// <summary>
    /// The seam: a YARP request transform that, for a request carrying <see cref="Header"/>, registers a completion
    /// callback waiting on a gate. Registered after Mnemo's own (its middleware registers first, when the request
    /// arrives), it runs before it: the request's completion, and with it the hand-off of its turn, waits for the test.
    /// </summary>
    private sealed class CompletionGates : ITransformProvider
    {
        public const string Header = "X-Test-Hold-Completion";

        private readonly ConcurrentDictionary<string, Gate> _gates = new(StringComparer.Ordinal);

        public void Register(IServiceCollection services) => services.AddSingleton<ITransformProvider>(this);

        public Gate Hold(string name) => _gates.GetOrAdd(name, _ => new Gate());

        public void ValidateRoute(TransformRouteValidationContext context)
        {
        }

        public void ValidateCluster(TransformClusterValidationContext context)
        {
        }

        public void Apply(TransformBuilderContext context) => context.AddRequestTransform(transform =>
        {
            var http = transform.HttpContext;
            if (http.Request.Headers.TryGetValue(Header, out var name) && _gates.TryGetValue(name.ToString(), out var gate))
            {
                transform.ProxyRequest.Headers.Remove(Header);
                http.Response.OnCompleted(gate.WaitAsync);
            }

            return ValueTask.CompletedTask;
        });

        public sealed class Gate
        {
            private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
            private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

            /// <summary>The request's completion has begun and waits.</summary>
            public Task Reached => _reached.Task;

            public void Release() => _released.TrySetResult();

            public Task WaitAsync()
            {
                _reached.TrySetResult();
                return _released.Task.WaitAsync(TimeSpan.FromSeconds(30));
            }
        }
    }
}
