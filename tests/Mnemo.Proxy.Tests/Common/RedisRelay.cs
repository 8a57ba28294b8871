using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>
/// A TCP relay in front of Redis that watches the RESP traffic, so round trips are counted outside the code under test.
/// A round trip starts when a command is sent on a connection with no reply outstanding, and holds every command sent
/// before the replies catch up (pipelined commands share one). An optional delay is added in each direction.
/// </summary>
public sealed class RedisRelay : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _tasks = [];
    private readonly List<RoundTrip> _roundTrips = [];
    private int _epoch;
    private readonly Task _accept;

    private RedisRelay(int targetPort, TimeSpan delay)
    {
        _targetPort = targetPort;
        Delay = delay;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accept = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>Added to every chunk, in each direction.</summary>
    public TimeSpan Delay { get; set; }

    public static RedisRelay Start(RedisServer server, TimeSpan delay = default) => new(server.Port, delay);

    /// <summary>Settings for a proxy behind a counting relay: its few milliseconds never make a read time out.</summary>
    public static Dictionary<string, string?> PatientReads => new() { ["Mnemo:Redis:ReadTimeout"] = "00:00:05" };

    /// <summary>
    /// A relay for counting round trips. SE.Redis may flush the commands of one batch separately; on bare loopback
    /// Redis can answer the first before the next arrives, and the relay would see two round trips where the client
    /// waited once. 5 ms each way, as on any real network, leave only the waits the client makes.
    /// </summary>
    public static RedisRelay StartCounting(RedisServer server) => Start(server, TimeSpan.FromMilliseconds(5));

    public IReadOnlyList<RoundTrip> RoundTrips
    {
        get
        {
            lock (_roundTrips)
            {
                return _roundTrips.Select(r => r.Snapshot()).ToList();
            }
        }
    }

    /// <summary>
    /// Round trips that touched data: everything but the client's heartbeats (PING, ECHO) and the session cache's
    /// subscription and its probes (SUBSCRIBE, PUBLISH: on a timer, on the subscriber connection, never per request).
    /// </summary>
    /// <remarks>A probe pipelined with a data command is left out of that round trip's commands.</remarks>
    public IReadOnlyList<RoundTrip> DataRoundTrips =>
        RoundTrips.Select(static r => r.Without(static c => c is "SUBSCRIBE" or "PUBLISH"))
            .Where(static r => r.Commands.Count > 0 && !r.Commands.All(static c => c is "PING" or "ECHO")).ToList();

    /// <summary>
    /// Forgets what was counted. A command sent after this starts a round trip of its own even when it is pipelined behind
    /// one still awaiting its reply (a heartbeat PING, say), so no command after the reset is hidden in a forgotten one.
    /// </summary>
    public void Reset()
    {
        lock (_roundTrips)
        {
            _roundTrips.Clear();
            _epoch++;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accept;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }

        Task[] tasks;
        lock (_tasks)
        {
            tasks = [.. _tasks];
        }

        await Task.WhenAll(tasks).ContinueWith(static _ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            lock (_tasks)
            {
                _tasks.Add(RelayAsync(client));
            }
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using var upstream = new TcpClient();
        using (client)
        {
            try
            {
                await upstream.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token);
            }
            catch (SocketException)
            {
                return;
            }

            client.NoDelay = true;
            upstream.NoDelay = true;
            var connection = new ConnectionState(this);
            using var done = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            var toServer = PumpAsync(client.GetStream(), upstream.GetStream(), connection.FromClient, done);
            var toClient = PumpAsync(upstream.GetStream(), client.GetStream(), connection.FromServer, done);
            await Task.WhenAny(toServer, toClient);
            await done.CancelAsync();
            await Task.WhenAll(toServer, toClient).ContinueWith(static _ => { }, TaskScheduler.Default);
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, Action<ReadOnlyMemory<byte>> observe, CancellationTokenSource done)
    {
        var delayed = Channel.CreateUnbounded<(byte[] Data, long Due)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var writer = WriteDelayedAsync(delayed.Reader, to, done.Token);
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReadAsync(buffer, done.Token);
                if (read == 0)
                {
                    break;
                }

                observe(buffer.AsMemory(0, read));
                var due = Stopwatch.GetTimestamp() + (long)(Delay.TotalSeconds * Stopwatch.Frequency);
                await delayed.Writer.WriteAsync((buffer.AsSpan(0, read).ToArray(), due), done.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        finally
        {
            delayed.Writer.TryComplete();
            await writer.ContinueWith(static _ => { }, TaskScheduler.Default);
            await done.CancelAsync();
        }
    }

    private static async Task WriteDelayedAsync(ChannelReader<(byte[] Data, long Due)> reader, NetworkStream to, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var (data, due) in reader.ReadAllAsync(cancellationToken))
            {
                // Timers fire on a millisecond tick, early or late by up to one: sleep short, spin the rest, so the
                // added delay is what was asked (the delay mode measures round trips in units of it).
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
                if (wait > TimeSpan.FromMilliseconds(2))
                {
                    await Task.Delay(wait - TimeSpan.FromMilliseconds(1.5), cancellationToken);
                }

                while (Stopwatch.GetTimestamp() < due)
                {
                    Thread.SpinWait(50);
                }

                await to.WriteAsync(data, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    private sealed class ConnectionState(RedisRelay relay)
    {
        private readonly List<byte> _fromClient = [];
        private readonly List<byte> _fromServer = [];
        private int _outstanding;
        private RoundTrip? _current;
        private int _currentEpoch;

        public void FromClient(ReadOnlyMemory<byte> data)
        {
            _fromClient.AddRange(data.Span);
            var parts = new List<string>();
            while (Resp.TryRead(_fromClient, 0, out var consumed, parts))
            {
                _fromClient.RemoveRange(0, consumed);
                var command = parts.Count > 0 ? parts[0].ToUpperInvariant() : "";
                var argument = parts.Count > 1 ? parts[1] : "";
                parts.Clear();
                lock (relay._roundTrips)
                {
                    if (Volatile.Read(ref _outstanding) <= 0 || _current is null || _currentEpoch != relay._epoch)
                    {
                        _current = new RoundTrip(Stopwatch.GetTimestamp());
                        _currentEpoch = relay._epoch;
                        relay._roundTrips.Add(_current);
                    }

                    _current.Add(command, argument);
                    Interlocked.Increment(ref _outstanding);
                }
            }
        }

        public void FromServer(ReadOnlyMemory<byte> data)
        {
            _fromServer.AddRange(data.Span);
            while (Resp.TryRead(_fromServer, 0, out var consumed, null))
            {
                _fromServer.RemoveRange(0, consumed);
                lock (relay._roundTrips)
                {
                    if (Interlocked.Decrement(ref _outstanding) < 0)
                    {
                        // Pushes (pub/sub) are replies nobody asked for.
                        Interlocked.Exchange(ref _outstanding, 0);
                    }
                }
            }
        }
    }

    /// <summary>Just enough RESP2/RESP3 to find where each value ends, and the parts of a command.</summary>
    private static class Resp
    {
        public static bool TryRead(List<byte> buffer, int start, out int consumed, List<string>? parts)
        {
            consumed = 0;
            parts?.Clear();
            var position = start;
            if (!TryValue(buffer, ref position, parts, top: true))
            {
                return false;
            }

            consumed = position - start;
            return true;
        }

        private static bool TryValue(List<byte> buffer, ref int position, List<string>? parts, bool top)
        {
            if (position >= buffer.Count)
            {
                return false;
            }

            var type = (char)buffer[position];
            if (!TryLine(buffer, position + 1, out var line, out var next))
            {
                return false;
            }

            switch (type)
            {
                case '*' or '~' or '>' or '%' or '|':
                    var count = long.Parse(line, System.Globalization.CultureInfo.InvariantCulture);
                    position = next;
                    if (count < 0)
                    {
                        return true;
                    }

                    var elements = type is '%' or '|' ? count * 2 : count;
                    for (var i = 0; i < elements; i++)
                    {
                        if (!TryValue(buffer, ref position, top && type == '*' ? parts : null, top: false))
                        {
                            return false;
                        }
                    }

                    return type != '|' || TryValue(buffer, ref position, parts, top);
                case '$' or '=' or '!':
                    var length = int.Parse(line, System.Globalization.CultureInfo.InvariantCulture);
                    if (length < 0)
                    {
                        position = next;
                        return true;
                    }

                    if (next + length + 2 > buffer.Count)
                    {
                        return false;
                    }

                    parts?.Add(Encoding.UTF8.GetString(buffer.GetRange(next, Math.Min(length, 64)).ToArray()));
                    position = next + length + 2;
                    return true;
                case '+' or '-' or ':' or '_' or '#' or ',' or '(':
                    position = next;
                    return true;
                default:
                    // An inline command (client side): the first word is the command.
                    if (top && parts is not null)
                    {
                        parts.Add(((char)buffer[position] + line).Split(' ')[0]);
                    }

                    position = next;
                    return true;
            }
        }

        private static bool TryLine(List<byte> buffer, int from, out string line, out int next)
        {
            for (var i = from; i + 1 < buffer.Count; i++)
            {
                if (buffer[i] == '\r' && buffer[i + 1] == '\n')
                {
                    line = Encoding.ASCII.GetString(buffer.GetRange(from, i - from).ToArray());
                    next = i + 2;
                    return true;
                }
            }

            line = "";
            next = 0;
            return false;
        }
    }
}

/// <summary>One request/response exchange with Redis as seen on the wire.</summary>
public sealed class RoundTrip(long startedAt)
{
    private readonly List<string> _commands = [];
    private readonly List<string> _arguments = [];

    public long StartedAt { get; } = startedAt;

    public IReadOnlyList<string> Commands => _commands;

    /// <summary>The first argument of each command (for EVALSHA, the script's SHA1), cut to 64 bytes.</summary>
    public IReadOnlyList<string> FirstArguments => _arguments;

    internal void Add(string command, string firstArgument)
    {
        _commands.Add(command);
        _arguments.Add(firstArgument);
    }

    internal RoundTrip Snapshot()
    {
        var copy = new RoundTrip(StartedAt);
        copy._commands.AddRange(_commands);
        copy._arguments.AddRange(_arguments);
        return copy;
    }

    /// <summary>A copy without the commands <paramref name="leave"/> accepts.</summary>
    internal RoundTrip Without(Func<string, bool> leave)
    {
        var copy = new RoundTrip(StartedAt);
        for (var i = 0; i < _commands.Count; i++)
        {
            if (!leave(_commands[i]))
            {
                copy.Add(_commands[i], _arguments[i]);
            }
        }

        return copy;
    }

    public override string ToString() => string.Join("+", _commands);
}
