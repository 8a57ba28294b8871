using System.Text.Json;
using Mnemo.Proxy.Context;

namespace Mnemo.Proxy.Dialects;

/// <summary>One API format: where its history lives in a request, how its responses carry the answer, how it reports errors.</summary>
internal abstract class Dialect
{
    public abstract DialectId Id { get; }

    /// <summary>Whether a request that no route metadata assigned belongs to this dialect.</summary>
    public abstract bool Matches(HttpRequest request);

    /// <summary>
    /// Finds where history goes in <paramref name="body"/> and which messages are the new input, without building a DOM.
    /// Returns an error message safe to show the client (it never quotes the body), or null.
    /// </summary>
    public abstract string? ParseRequest(ReadOnlySpan<byte> body, MemoryMode mode, ChatRequest request);

    /// <summary>Writes an error in this API's own error format.</summary>
    public abstract Task WriteErrorAsync(HttpResponse response, int statusCode, string code, string message, CancellationToken cancellationToken);

    /// <summary>A parser for a successful response of this media type, or null when the response cannot be recorded.</summary>
    public abstract ResponseParser? CreateResponseParser(string? mediaType);

    /// <summary>Writes the stored form of one turn's messages (inputs, then the answer) as elements of a JSON array.</summary>
    public abstract void WriteTurnMessages(Utf8JsonWriter writer, ReadOnlySpan<byte> body, ChatRequest request, ResponseParser response);
}

/// <summary>What a dialect found in a request body: the splice point and the new input messages.</summary>
internal sealed class ChatRequest
{
    /// <summary>Byte offset in the body where history is inserted.</summary>
    public int InsertAt { get; set; }

    /// <summary>History follows an existing element, so it needs a comma before it.</summary>
    public bool CommaBefore { get; set; }

    /// <summary>An existing element follows the history, so it needs a comma after it.</summary>
    public bool CommaAfter { get; set; }

    public bool Stream { get; set; }

    /// <summary>The messages of this turn, as ranges of the original body.</summary>
    public List<Range> Inputs { get; } = new(4);

    public int InputBytes { get; set; }

    public void Reset()
    {
        InsertAt = 0;
        CommaBefore = false;
        CommaAfter = false;
        Stream = false;
        Inputs.Clear();
        InputBytes = 0;
    }
}
