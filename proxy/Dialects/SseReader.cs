using Mnemo.Proxy.Buffers;

namespace Mnemo.Proxy.Dialects;

/// <summary>Receives the events an <see cref="SseReader"/> assembles.</summary>
internal interface ISseSink
{
    void OnEvent(ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data);
}

/// <summary>
/// Incremental text/event-stream parser (WHATWG rules: CR, LF or CRLF line ends, multi-line data) over a <see cref="LineReader"/>.
/// The current event's data is copied into buffers reused for the whole stream, so it allocates nothing per chunk.
/// </summary>
internal sealed class SseReader : ILineSink, IDisposable
{
    private readonly LineReader _lines = new();
    private readonly PooledBuffer _data = new(1024);
    private readonly PooledBuffer _eventType = new(32);
    private ISseSink? _sink;
    private bool _hasData;

    public void Feed(ReadOnlySpan<byte> chunk, ISseSink sink)
    {
        _sink = sink;
        _lines.Feed(chunk, this);
    }

    /// <summary>End of stream: a last event without its blank line is still delivered (lenient, as browsers are not).</summary>
    public void Complete(ISseSink sink)
    {
        _sink = sink;
        _lines.Complete(this);
        OnLine([]);
    }

    public void Dispose()
    {
        _lines.Dispose();
        _data.Dispose();
        _eventType.Dispose();
    }

    public void OnLine(ReadOnlySpan<byte> line)
    {
        if (line.IsEmpty)
        {
            if (_hasData)
            {
                _sink!.OnEvent(_eventType.Span, _data.Span);
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
