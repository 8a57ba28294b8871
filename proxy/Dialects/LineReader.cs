using Mnemo.Proxy.Buffers;

namespace Mnemo.Proxy.Dialects;

/// <summary>Receives the lines a <see cref="LineReader"/> splits out, without their line ends.</summary>
internal interface ILineSink
{
    void OnLine(ReadOnlySpan<byte> line);
}

/// <summary>
/// Splits a byte stream into lines (CR, LF or CRLF ends) as it arrives in chunks, for SSE and NDJSON alike.
/// Only a line cut by a chunk boundary is copied, into one buffer reused for the whole stream, so it allocates nothing per chunk.
/// </summary>
internal sealed class LineReader : IDisposable
{
    private readonly PooledBuffer _partial = new(256);
    private bool _skipLineFeed;

    public void Feed(ReadOnlySpan<byte> chunk, ILineSink sink)
    {
        while (!chunk.IsEmpty)
        {
            if (_skipLineFeed)
            {
                _skipLineFeed = false;
                if (chunk[0] == (byte)'\n')
                {
                    chunk = chunk[1..];
                    continue;
                }
            }

            var end = chunk.IndexOfAny((byte)'\r', (byte)'\n');
            if (end < 0)
            {
                _partial.Append(chunk);
                return;
            }

            _skipLineFeed = chunk[end] == (byte)'\r';
            if (_partial.Length > 0)
            {
                _partial.Append(chunk[..end]);
                sink.OnLine(_partial.Span);
                _partial.Clear();
            }
            else
            {
                sink.OnLine(chunk[..end]);
            }

            chunk = chunk[(end + 1)..];
        }
    }

    /// <summary>End of stream: a last line without its line end is still delivered.</summary>
    public void Complete(ILineSink sink)
    {
        if (_partial.Length > 0)
        {
            sink.OnLine(_partial.Span);
            _partial.Clear();
        }
    }

    public void Dispose() => _partial.Dispose();
}
