using Microsoft.Net.Http.Headers;
using Mnemo.Proxy.Buffers;

namespace Mnemo.Proxy.Forwarding;

/// <summary>Reads a request body whole into a pooled buffer, so it can be parsed and spliced.</summary>
internal static class RequestBody
{
    /// <summary>
    /// Whether session memory can read this body: JSON (<c>application/json</c>, any <c>+json</c> type, or no
    /// Content-Type at all, as many clients send) in UTF-8, not content-encoded.
    /// </summary>
    public static BodyKind Kind(HttpRequest request)
    {
        var contentType = request.ContentType;
        if (!string.IsNullOrEmpty(contentType))
        {
            if (!MediaTypeHeaderValue.TryParse(contentType, out var media)
                || !(media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                    || media.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase)))
            {
                return BodyKind.Other;
            }

            if (media.Charset.HasValue
                && !media.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
                && !media.Charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
            {
                return BodyKind.UnsupportedCharset;
            }
        }

        var encoding = request.Headers.ContentEncoding;
        return encoding.Count == 0 || (encoding.Count == 1 && string.Equals(encoding[0]?.Trim(), "identity", StringComparison.OrdinalIgnoreCase))
            ? BodyKind.Json
            : BodyKind.Encoded;
    }

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
        catch (BadHttpRequestException ex) when (cancellationToken.IsCancellationRequested || ClientLeft(ex))
        {
            return new BodyError(0, "The client went away.");
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

    /// <summary>
    /// Kestrel reports a body cut short by the client's leaving (fewer bytes than its Content-Length, or a chunked body
    /// without its last chunk) as a bad request, with a reason that is internal: by then there is nobody to answer.
    /// </summary>
    private static bool ClientLeft(BadHttpRequestException ex) =>
        ex.Message.StartsWith("Unexpected end of request content", StringComparison.Ordinal);
}

/// <summary>What kind of body a memory request carries.</summary>
internal enum BodyKind
{
    Json,

    /// <summary>Not JSON: forwarded untouched, without memory.</summary>
    Other,

    /// <summary>JSON in a charset other than UTF-8.</summary>
    UnsupportedCharset,

    /// <summary>Content-encoded (gzip, br, …): Mnemo cannot splice into it.</summary>
    Encoded,
}

/// <summary>Why a body could not be read: a status to answer with, or 0 when the client went away.</summary>
internal sealed record BodyError(int StatusCode, string Message);
