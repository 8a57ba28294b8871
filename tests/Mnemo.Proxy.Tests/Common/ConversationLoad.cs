using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// Conversations on several sessions through the proxy, each sequential (a session's next question goes out once the
/// previous answer has been read, as a chat client does), recording every exchange: what a failover or a slot
/// migration of Redis did to the clients.
/// </summary>
internal sealed class ConversationLoad
{
    private readonly ProxyHost _proxy;
    private readonly byte[] _json;
    private readonly byte[] _stream;
    private readonly TimeSpan _pause;
    private readonly long _started = Stopwatch.GetTimestamp();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<Exchange>> _exchanges = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private Task _running = Task.CompletedTask;

    private ConversationLoad(ProxyHost proxy, FakeUpstream upstream, string[] sessions, TimeSpan pause)
    {
        _proxy = proxy;
        _json = upstream.Fixture("completion.json");
        _stream = upstream.Fixture("stream.sse");
        Sessions = sessions;
        _pause = pause;
        foreach (var session in sessions)
        {
            _exchanges[session] = new ConcurrentQueue<Exchange>();
        }
    }

    public IReadOnlyList<string> Sessions { get; }

    /// <summary>Time since the load started.</summary>
    public TimeSpan Now => Stopwatch.GetElapsedTime(_started);

    /// <summary>
    /// Starts one sequential conversation per session, alternating JSON and streamed answers (the upstream's default
    /// fixtures); <paramref name="pause"/> separates a session's turns.
    /// </summary>
    public static ConversationLoad Start(ProxyHost proxy, FakeUpstream upstream, IEnumerable<string> sessions, TimeSpan pause)
    {
        var load = new ConversationLoad(proxy, upstream, [.. sessions], pause);
        load._running = Task.WhenAll(load.Sessions.Select(s => Task.Run(() => load.ConverseAsync(s))));
        return load;
    }

    /// <summary>The exchanges of a session so far, in order.</summary>
    public IReadOnlyList<Exchange> Of(string session) => [.. _exchanges[session]];

    public IEnumerable<Exchange> All => Sessions.SelectMany(Of);

    /// <summary>The questions whose answers reached the client whole, in order: exactly what the session must have stored.</summary>
    public string[] Completed(string session) => [.. Of(session).Where(e => e.Completed).Select(e => e.Question)];

    /// <summary>Polls the recorded exchanges until <paramref name="done"/> holds; fails the test after the timeout.</summary>
    public async Task WaitUntilAsync(Func<ConversationLoad, bool> done, string what, TimeSpan timeout)
    {
        await Eventually.TrueAsync(() => Task.FromResult(done(this) || _running.IsCompleted), what, timeout);
        Assert.That(_running.IsFaulted, Is.False, () => $"the load failed: {_running.Exception}");
        Assert.That(done(this), Is.True, $"the load stopped before {what}");
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await _running;
        _stop.Dispose();
    }

    private async Task ConverseAsync(string session)
    {
        var exchanges = _exchanges[session];
        for (var turn = 1; !_stop.IsCancellationRequested; turn++)
        {
            var question = $"{session} question {turn}";
            var stream = turn % 2 == 0;
            var body = JsonSerializer.Serialize(new
            {
                model = "gpt-4o-mini",
                messages = new object[] { new { role = "user", content = question } },
                stream,
            });
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StringContent(body, Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", FunctionalTest.ApiKey);
            request.Headers.Add("X-Session-Id", session);
            var started = Now;
            int status;
            string memory = "", error = "";
            var contextTurns = -1;
            var completed = false;
            try
            {
                // Not cancelled by the stop: a question asked is always answered and recorded.
                using var response = await _proxy.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                status = (int)response.StatusCode;
                memory = response.Headers.TryGetValues("X-Mnemo-Memory", out var values) ? string.Join(",", values) : "";
                if (response.Headers.TryGetValues("X-Mnemo-Context-Turns", out var turns) && int.TryParse(turns.First(), out var count))
                {
                    contextTurns = count;
                }

                var answer = await response.Content.ReadAsByteArrayAsync();
                completed = response.IsSuccessStatusCode && answer.AsSpan().SequenceEqual(stream ? _stream : _json);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
            {
                status = 0;
                error = ex.GetType().Name + ": " + ex.Message;
            }

            exchanges.Enqueue(new Exchange(session, turn, question, started, Now, status, memory, contextTurns, completed, error));
            try
            {
                await Task.Delay(_pause, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>One request and its answer, as the client saw them.</summary>
    public sealed record Exchange(
        string Session, int Turn, string Question, TimeSpan Started, TimeSpan Ended, int Status, string Memory, int ContextTurns, bool Completed, string Error)
    {
        public override string ToString() =>
            $"{Session} #{Turn} at {Started.TotalSeconds:F2}s: {Status} memory={Memory} context={ContextTurns} completed={Completed} {Error}";
    }
}
