using System.Text.Json;
using Mnemo.Proxy.Buffers;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// Concatenates JSON string fragments exactly as they were escaped on the wire. Joining the escaped forms of
/// complete JSON strings gives the escaped form of the joined string, so streamed text is stored without decoding.
/// </summary>
internal sealed class RawJsonString : IDisposable
{
    private readonly PooledBuffer _buffer;

    public RawJsonString(int capacity = 256)
    {
        _buffer = new PooledBuffer(capacity);
        _buffer.Append((byte)'"');
    }

    /// <summary>Bytes of text kept, without the quotes.</summary>
    public int Length => _buffer.Length - 1;

    public bool IsEmpty => Length == 0;

    /// <summary>Appends the current string token's raw (still escaped) bytes.</summary>
    public void Append(ref Utf8JsonReader reader) => _buffer.Append(reader.ValueSpan);

    public void Append(ReadOnlySpan<byte> escaped) => _buffer.Append(escaped);

    public void Write(Utf8JsonWriter writer)
    {
        _buffer.Append((byte)'"');
        writer.WriteRawValue(_buffer.Span, skipInputValidation: true);
        _buffer.Advance(-1);
    }

    public void Dispose() => _buffer.Dispose();
}
