using System.Buffers;

namespace Mnemo.Proxy.Buffers;

/// <summary>A growable byte buffer on <see cref="ByteArrays"/> (pooled while small); returned on dispose.</summary>
internal sealed class PooledBuffer : IBufferWriter<byte>, IDisposable
{
    private byte[] _array;
    private int _length;

    public PooledBuffer(int initialCapacity = 256)
    {
        _array = ByteArrays.Rent(initialCapacity);
    }

    public int Length => _length;

    public int Capacity => _array.Length;

    public ReadOnlySpan<byte> Span => _array.AsSpan(0, _length);

    public ReadOnlyMemory<byte> Memory => _array.AsMemory(0, _length);

    public void Clear() => _length = 0;

    public void Append(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(GetSpan(bytes.Length));
        _length += bytes.Length;
    }

    public void Append(byte value)
    {
        GetSpan(1)[0] = value;
        _length++;
    }

    public void Set(ReadOnlySpan<byte> bytes)
    {
        _length = 0;
        Append(bytes);
    }

    public void Advance(int count) => _length += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _array.AsMemory(_length);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _array.AsSpan(_length);
    }

    public byte[] ToArray() => Span.ToArray();

    /// <summary>A read-only stream over the current content; detach it before the buffer is disposed.</summary>
    public BodyStream AsStream() => new(_array, _length);

    public void Dispose()
    {
        var array = _array;
        _array = [];
        _length = 0;
        ByteArrays.Return(array);
    }

    private void Ensure(int sizeHint)
    {
        var needed = _length + Math.Max(sizeHint, 1);
        if (needed <= _array.Length)
        {
            return;
        }

        var grown = ByteArrays.Rent((int)Math.Min(Array.MaxLength, Math.Max(needed, (long)_array.Length * 2)));
        _array.AsSpan(0, _length).CopyTo(grown);
        ByteArrays.Return(_array);

        _array = grown;
    }
}
