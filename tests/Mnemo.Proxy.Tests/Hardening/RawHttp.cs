using System.Net.Sockets;
using System.Text;

namespace Mnemo.Proxy.Tests.Hardening;

/// <summary>What came back for one request: the status, the headers (names lower-cased, repeats joined) and the decoded body.</summary>
public sealed record Reply(int Status, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var value) ? value : "";

    public string Text => Encoding.UTF8.GetString(Body);
}

/// <summary>
/// An HTTP/1.1 client on a bare socket, for what <see cref="HttpClient"/> will not send: repeated headers, raw bytes
/// in header values, broken framing, stalled uploads.
/// </summary>
public static class RawHttp
{
    /// <summary>Request bytes: the request line, <c>Host</c>, the headers as given (UTF-8, unvalidated), <c>Connection: close</c>, then the body.</summary>
    /// <param name="contentLength">Adds <c>Content-Length</c> of the body; false leaves the framing to <paramref name="headers"/>.</param>
    public static byte[] Request(Uri server, string path, IEnumerable<(string Name, string Value)> headers, byte[] body, bool contentLength = true)
    {
        var head = new StringBuilder();
        head.Append("POST ").Append(path).Append(" HTTP/1.1\r\n");
        head.Append("Host: ").Append(server.Authority).Append("\r\n");
        foreach (var (name, value) in headers)
        {
            head.Append(name).Append(": ").Append(value).Append("\r\n");
        }

        if (contentLength)
        {
            head.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        }

        head.Append("Connection: close\r\n\r\n");
        return [.. Encoding.UTF8.GetBytes(head.ToString()), .. body];
    }

    /// <summary>Chunked transfer coding of <paramref name="body"/> in chunks of <paramref name="chunk"/> bytes, with the last chunk.</summary>
    public static byte[] Chunked(byte[] body, int chunk)
    {
        using var output = new MemoryStream();
        for (var offset = 0; offset < body.Length; offset += chunk)
        {
            var length = Math.Min(chunk, body.Length - offset);
            output.Write(Encoding.ASCII.GetBytes($"{length:x}\r\n"));
            output.Write(body, offset, length);
            output.Write("\r\n"u8);
        }

        output.Write("0\r\n\r\n"u8);
        return output.ToArray();
    }

    /// <summary>
    /// Sends the bytes while reading the reply (the server may answer, and close, before it has read them all) and
    /// returns the reply once complete, or what arrived before the server closed.
    /// </summary>
    public static async Task<Reply> SendAsync(Uri server, byte[] request, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(15));
        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(server.Host, server.Port, cancel.Token);
        var stream = client.GetStream();
        var sending = SendIgnoringResetAsync(stream, request, cancel.Token);
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        Reply? reply = null;
        try
        {
            while (true)
            {
                var read = await stream.ReadAsync(buffer, cancel.Token);
                if (read == 0)
                {
                    break;
                }

                received.Write(buffer, 0, read);
                if (TryParse(received.ToArray(), complete: false, out reply))
                {
                    break;
                }
            }
        }
        catch (IOException)
        {
            // A reset after the reply: keep what arrived.
        }

        await sending;
        if (reply is null && !TryParse(received.ToArray(), complete: true, out reply))
        {
            throw new InvalidOperationException($"No HTTP reply; {received.Length} bytes arrived.");
        }

        return reply!;
    }

    /// <summary>Opens a connection, sends <paramref name="request"/> (a body shorter than its Content-Length), waits, and closes without reading.</summary>
    public static async Task SendAndAbandonAsync(Uri server, byte[] request, TimeSpan wait)
    {
        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(server.Host, server.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(request);
        await stream.FlushAsync();
        await Task.Delay(wait);
        client.Client.Close(0);
    }

    private static async Task SendIgnoringResetAsync(NetworkStream stream, byte[] request, CancellationToken cancellationToken)
    {
        try
        {
            for (var offset = 0; offset < request.Length; offset += 16 * 1024)
            {
                await stream.WriteAsync(request.AsMemory(offset, Math.Min(16 * 1024, request.Length - offset)), cancellationToken);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The server answered and closed before reading everything (a 413, a 431): the reply is what matters.
        }
    }

    private static bool TryParse(byte[] data, bool complete, out Reply? reply)
    {
        reply = null;
        var headEnd = data.AsSpan().IndexOf("\r\n\r\n"u8);
        if (headEnd < 0)
        {
            return false;
        }

        var lines = Encoding.ASCII.GetString(data, 0, headEnd).Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var name = line[..colon].Trim().ToLowerInvariant();
            var value = line[(colon + 1)..].Trim();
            headers[name] = headers.TryGetValue(name, out var previous) ? previous + "," + value : value;
        }

        var body = data.AsSpan(headEnd + 4);
        byte[] decoded;
        if (headers.TryGetValue("transfer-encoding", out var coding) && coding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            if (!TryDechunk(body, out decoded))
            {
                return false;
            }
        }
        else if (headers.TryGetValue("content-length", out var length))
        {
            var n = int.Parse(length, System.Globalization.CultureInfo.InvariantCulture);
            if (body.Length < n)
            {
                return false;
            }

            decoded = body[..n].ToArray();
        }
        else if (complete)
        {
            decoded = body.ToArray();
        }
        else
        {
            return false;
        }

        reply = new Reply(status, headers, decoded);
        return true;
    }

    private static bool TryDechunk(ReadOnlySpan<byte> body, out byte[] decoded)
    {
        using var output = new MemoryStream();
        decoded = [];
        while (true)
        {
            var lineEnd = body.IndexOf("\r\n"u8);
            if (lineEnd < 0)
            {
                return false;
            }

            var size = Convert.ToInt32(Encoding.ASCII.GetString(body[..lineEnd]).Split(';')[0].Trim(), 16);
            body = body[(lineEnd + 2)..];
            if (size == 0)
            {
                decoded = output.ToArray();
                return true;
            }

            if (body.Length < size + 2)
            {
                return false;
            }

            output.Write(body[..size]);
            body = body[(size + 2)..];
        }
    }
}
