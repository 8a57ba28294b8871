namespace Mnemo.Proxy.Buffers;

/// <summary>
/// A read-only stream over a byte range that lets go of the array when the request ends (<see cref="Detach"/>).
/// </summary>
/// <remarks>
/// The forwarded body is held after the request by whoever saw it last: the server's request features until the
/// connection's next request, the upstream client's connection until its next send. A <see cref="MemoryStream"/>
/// would keep the whole array alive with it (a 30 MB body per idle connection); this keeps an empty shell.
/// </remarks>
internal sealed class BodyStream : Stream
{
    private byte[]? _array;
    private readonly int _end;
    private int _position;

    public BodyStream(byte[] array, int length)
    {
        _array = array;
        _end = length;
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => _end;

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    /// <summary>The request is over: the array goes back to its owner and this stream reads nothing more.</summary>
    public void Detach() => _array = null;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_array is not { } array)
        {
            return 0;
        }

        var count = Math.Min(buffer.Length, _end - _position);
        array.AsSpan(_position, count).CopyTo(buffer);
        _position += count;
        return count;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult(Read(buffer.AsSpan(offset, count)));

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        new(Read(buffer.Span));

    public override async Task CopyToAsync(Stream destination, int bufferSize, CancellationToken cancellationToken)
    {
        if (_array is { } array && _position < _end)
        {
            var start = _position;
            _position = _end;
            await destination.WriteAsync(array.AsMemory(start, _end - start), cancellationToken).ConfigureAwait(false);
        }
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        _array = null;
        base.Dispose(disposing);
    }
}
