using Mnemo.Proxy.Context;

namespace Mnemo.Proxy.Dialects;

/// <summary>Receives the events an <see cref="SseReader"/> assembles.</summary>
internal interface ISseSink
{
    void OnEvent(ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data);
}

/// <summary>
/// Incremental text/event-stream parser (WHATWG rules: CR, LF or CRLF line ends, multi-line data).
/// Only a line cut by a chunk boundary and the current event's data are copied, into buffers reused for the whole stream,
/// so it allocates nothing per chunk.
/// </summary>
internal sealed class SseReader : IDisposable
{
    private readonly PooledBuffer _partialLine = new(256);
    private readonly PooledBuffer _data = new(1024);
    private readonly PooledBuffer _eventType = new(32);
    private bool _skipLineFeed;
    private bool _hasData;

    public void Feed(ReadOnlySpan<byte> chunk, ISseSink sink)
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
                _partialLine.Append(chunk);
                return;
            }

            _skipLineFeed = chunk[end] == (byte)'\r';
            if (_partialLine.Length > 0)
            {
                _partialLine.Append(chunk[..end]);
                Line(_partialLine.Span, sink);
                _partialLine.Clear();
            }
            else
            {
                Line(chunk[..end], sink);
            }

            chunk = chunk[(end + 1)..];
        }
    }

    /// <summary>End of stream: a last event without its blank line is still delivered (lenient, as browsers are not).</summary>
    public void Complete(ISseSink sink)
    {
        if (_partialLine.Length > 0)
        {
            Line(_partialLine.Span, sink);
            _partialLine.Clear();
        }

        Line([], sink);
    }

    public void Dispose()
    {
        _partialLine.Dispose();
        _data.Dispose();
        _eventType.Dispose();
    }

    private void Line(ReadOnlySpan<byte> line, ISseSink sink)
    {
        if (line.IsEmpty)
        {
            if (_hasData)
            {
                sink.OnEvent(_eventType.Span, _data.Span);
            }

            _hasData = false;
            _data.Clear();
            _eventType.Clear();
            return;
        }

        if (line[0] == (byte)':')
        {
            return;
        }

        var colon = line.IndexOf((byte)':');
        var field = colon < 0 ? line : line[..colon];
        var value = colon < 0 ? [] : line[(colon + 1)..];
        if (!value.IsEmpty && value[0] == (byte)' ')
        {
            value = value[1..];
        }

        if (field.SequenceEqual("data"u8))
        {
            if (_hasData)
            {
                _data.Append((byte)'\n');
            }

            _data.Append(value);
            _hasData = true;
        }
        else if (field.SequenceEqual("event"u8))
        {
            _eventType.Set(value);
        }
    }
}
