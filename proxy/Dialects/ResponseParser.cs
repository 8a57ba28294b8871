using System.Text.Json;
using Mnemo.Proxy.Context;

namespace Mnemo.Proxy.Dialects;

/// <summary>
/// Reads a response as it streams past, keeping only what the stored turn needs.
/// Fed from the response tee, so it must never throw and never hold the bytes it was given.
/// </summary>
internal abstract class ResponseParser : IDisposable
{
    private PooledBuffer? _usage;

    /// <summary>The upstream said the answer is complete (an end marker or a finish reason).</summary>
    public bool Completed { get; protected set; }

    /// <summary>Why the answer cannot be recorded; a fixed phrase, never response content.</summary>
    public string? Failure { get; protected set; }

    public long InputTokens { get; private set; } = -1;

    public long OutputTokens { get; private set; } = -1;

    public ReadOnlySpan<byte> UsageJson => _usage is null ? default : _usage.Span;

    /// <summary>Bytes of answer text kept, for the token estimate when the upstream reports no usage.</summary>
    public abstract int OutputBytes { get; }

    public void Feed(ReadOnlySpan<byte> chunk)
    {
        if (Failure is not null)
        {
            return;
        }

        try
        {
            OnData(chunk);
        }
        catch (JsonException)
        {
            Fail("response is not valid JSON");
        }
        catch (InvalidOperationException)
        {
            Fail("response JSON has an unexpected shape");
        }
    }

    public void End()
    {
        if (Failure is not null)
        {
            return;
        }

        try
        {
            OnEnd();
        }
        catch (JsonException)
        {
            Fail("response is not valid JSON");
        }
        catch (InvalidOperationException)
        {
            Fail("response JSON has an unexpected shape");
        }
    }

    /// <summary>Writes the assistant message(s) of the answer in the dialect's request format.</summary>
    public abstract void WriteAnswer(Utf8JsonWriter writer);

    public void Dispose()
    {
        _usage?.Dispose();
        _usage = null;
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected abstract void OnData(ReadOnlySpan<byte> chunk);

    protected virtual void OnEnd()
    {
    }

    protected virtual void Dispose(bool disposing)
    {
    }

    protected void Fail(string reason)
    {
        Failure ??= reason;
        Release();
    }

    /// <summary>Frees buffers early once the answer is known to be unrecordable.</summary>
    protected virtual void Release()
    {
    }

    /// <summary>Keeps the raw usage object and reads its token counts.</summary>
    protected void SetUsage(ReadOnlySpan<byte> usageObject, ReadOnlySpan<byte> inputName, ReadOnlySpan<byte> outputName)
    {
        _usage ??= new PooledBuffer(256);
        _usage.Set(usageObject);

        var reader = new Utf8JsonReader(usageObject);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isInput = reader.ValueTextEquals(inputName);
            var isOutput = !isInput && reader.ValueTextEquals(outputName);
            reader.Read();
            if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value))
            {
                if (isInput)
                {
                    InputTokens = value;
                }
                else if (isOutput)
                {
                    OutputTokens = value;
                }
            }
            else
            {
                reader.Skip();
            }
        }
    }
}
