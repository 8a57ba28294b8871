using Mnemo.Proxy.Buffers;

namespace Mnemo.Proxy.Forwarding;

/// <summary>Reads a request body whole into a pooled buffer, so it can be parsed and spliced.</summary>
internal static class RequestBody
{
    public static int InitialCapacity(HttpRequest request) =>
        request.ContentLength is long length and > 0 and < 64 * 1024 * 1024 ? (int)length + 1 : 16 * 1024;

    /// <summary>Reads the whole body; returns null, or why it could not (status 0 when the client went away).</summary>
    public static async ValueTask<BodyError?> ReadAsync(HttpRequest request, PooledBuffer body, CancellationToken cancellationToken)
    {
        try
        {
            var stream = request.Body;
            while (true)
            {
                var read = await stream.ReadAsync(body.GetMemory(4096), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return null;
                }

                body.Advance(read);
            }
        }
        catch (BadHttpRequestException ex)
        {
            return new BodyError(ex.StatusCode, ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? "The request body is larger than this proxy accepts."
                : "The request body could not be read.");
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            return new BodyError(0, "The client went away.");
        }
    }
}

/// <summary>Why a body could not be read: a status to answer with, or 0 when the client went away.</summary>
internal sealed record BodyError(int StatusCode, string Message);
