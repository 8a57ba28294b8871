using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Net;
using Mnemo.Proxy.Dialects;

namespace Mnemo.Proxy.Forwarding;

/// <summary>
/// Replaces the upstream response content so every chunk YARP copies to the client also passes the dialect's parser.
/// Nothing is buffered: each read is handed on as soon as the upstream produced it.
/// </summary>
/// <remarks>
/// The client's headers were copied from the original content before response transforms ran, so this content
/// carries none of its own.
/// </remarks>
internal sealed class TeeContent(HttpContent inner, Exchange exchange, ResponseParser? parser) : HttpContent
{
    protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
        new TeeStream(await inner.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), exchange, parser);

    protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) =>
        new TeeStream(inner.ReadAsStream(cancellationToken), exchange, parser);

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await using var source = await CreateContentReadStreamAsync(cancellationToken).ConfigureAwait(false);
        await source.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// A read-only pass-through stream that timestamps the first and last byte and feeds the parser. When the answer's
/// last event has been read (its end marker, all of an announced length, or the end of the body) it reports the answer
/// before handing those bytes on, so the turn is visible to this replica's next read before the client can see the end
/// of its response; a Strict request's last bytes also wait for the turn's write.
/// </summary>
internal sealed class TeeStream(Stream inner, Exchange exchange, ResponseParser? parser) : Stream
{
    private bool _ended;
    private bool _reported;
    private long _seen;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    // Pooled: a streamed answer waits for the upstream on almost every read (YARP's zero-byte reads included), and a
    // plain async ValueTask would allocate a state machine box for each of them, growing allocations with stream length.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        // Zero-byte reads (YARP waits with them so idle streams hold no buffer) are not end of stream.
        if (!buffer.IsEmpty)
        {
            Observe(buffer.Span[..read]);
            if (exchange.DurableWrite is { IsCompleted: false } write)
            {
                // Never throws: a failed or slow write leaves the turn to the retry queue, and the answer goes on.
                await write.ConfigureAwait(false);
            }
        }

        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(Span<byte> buffer)
    {
        var read = inner.Read(buffer);
        if (!buffer.IsEmpty)
        {
            Observe(buffer[..read]);
            exchange.DurableWrite?.GetAwaiter().GetResult();
        }

        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    private void Observe(ReadOnlySpan<byte> data)
    {
        if (!data.IsEmpty)
        {
            if (exchange.UpstreamFirstByte == 0)
            {
                exchange.UpstreamFirstByte = Stopwatch.GetTimestamp();
            }

            if (parser is null)
            {
                return;
            }

            parser.Feed(data);
            _seen += data.Length;
            if (_seen == exchange.UpstreamLength)
            {
                // All of the announced body: the client has the whole answer once these bytes are written.
                parser.End();
            }

            if (parser.Final)
            {
                Report();
            }
        }
        else if (!_ended)
        {
            _ended = true;
            exchange.UpstreamEnded = Stopwatch.GetTimestamp();
            parser?.End();
            Report();
        }
    }

    private void Report()
    {
        // Also without a parser: the answer ended, and why it cannot be recorded is logged once.
        if (!_reported)
        {
            _reported = true;
            exchange.AnswerEnded?.Invoke(exchange);
        }
    }
}
