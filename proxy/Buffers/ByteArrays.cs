using System.Buffers;

namespace Mnemo.Proxy.Buffers;

/// <summary>
/// Byte arrays for request and answer buffers: pooled up to <see cref="MaxPooledLength"/>, plain arrays above it.
/// </summary>
/// <remarks>
/// The shared pool keeps whatever it is given back, per core, for as long as the process lives: one 30 MB body
/// would pin 32 MB arrays (and the doubling steps below them) after the request is gone, and a few of them would
/// exceed the chart's memory limit. Large arrays are rare and short-lived; the GC returns them.
/// </remarks>
internal static class ByteArrays
{
    /// <summary>Arrays up to this length come from, and go back to, <see cref="ArrayPool{T}.Shared"/>.</summary>
    public const int MaxPooledLength = 1024 * 1024;

    public static byte[] Rent(int minimumLength) => minimumLength <= MaxPooledLength
        ? ArrayPool<byte>.Shared.Rent(minimumLength)
        : GC.AllocateUninitializedArray<byte>(minimumLength);

    /// <summary>Bytes of large arrays let go since the last full collection after which the GC is asked for one.</summary>
    public const long CollectAfterBytes = 64L * 1024 * 1024;

    /// <summary>How long after the last large array was let go the memory is given back.</summary>
    private static readonly TimeSpan s_quietCollect = TimeSpan.FromSeconds(1);

    private static readonly Timer s_timer = new(static _ => CollectQuietly(), null, Timeout.Infinite, Timeout.Infinite);
    private static long s_released;

    public static void Return(byte[] array)
    {
        if (array.Length is > 0 and <= MaxPooledLength)
        {
            ArrayPool<byte>.Shared.Return(array);
            return;
        }

        Released(array.Length);
    }

    /// <summary>
    /// Large arrays live on the large object heap, which only a full collection frees, and even then the GC keeps the
    /// freed pages committed for reuse: a proxy that goes quiet after a burst of large bodies would hold them resident,
    /// counted against its pod's memory limit, indefinitely. So during a burst a background full collection is asked
    /// for every <see cref="CollectAfterBytes"/> let go, and a second after the last large array was let go one
    /// aggressive collection gives the pages back. Large bodies are rare, and each costs far more to receive than the
    /// collections (a few milliseconds: what is live is small).
    /// </summary>
    private static void Released(int length)
    {
        if (Interlocked.Add(ref s_released, length) >= CollectAfterBytes)
        {
            Interlocked.Exchange(ref s_released, 0);
            GC.Collect(2, GCCollectionMode.Forced, blocking: false);
        }

        s_timer.Change(s_quietCollect, Timeout.InfiniteTimeSpan);
    }

    private static void CollectQuietly()
    {
        Interlocked.Exchange(ref s_released, 0);
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }
}
