namespace Mnemo.Proxy.Dialects;

/// <summary>Copies a body with history spliced in per a <see cref="SplicePlan"/>: bytes only, no DOM.</summary>
internal static class Splice
{
    /// <summary>Length of the body once <paramref name="segments"/> (each the comma-joined elements of one or more turns) are spliced in.</summary>
    public static int Length(int bodyLength, SplicePlan plan, ReadOnlySpan<ReadOnlyMemory<byte>> segments)
    {
        int count = 0, bytes = 0;
        foreach (var segment in segments)
        {
            if (!segment.IsEmpty)
            {
                count++;
                bytes += segment.Length;
            }
        }

        return count == 0 ? bodyLength : bodyLength - (plan.End - plan.Start) + plan.Open.Length + bytes + (count - 1) + plan.Close.Length;
    }

    /// <summary>Writes the spliced body into <paramref name="destination"/> (at least <see cref="Length"/> bytes); returns the length.</summary>
    public static int Write(ReadOnlySpan<byte> body, SplicePlan plan, ReadOnlySpan<ReadOnlyMemory<byte>> segments, Span<byte> destination)
    {
        var head = body[..plan.Start];
        head.CopyTo(destination);
        var written = head.Length;
        var first = true;
        foreach (var memory in segments)
        {
            var segment = memory.Span;
            if (segment.IsEmpty)
            {
                continue;
            }

            if (first)
            {
                plan.Open.CopyTo(destination[written..]);
                written += plan.Open.Length;
            }
            else
            {
                destination[written++] = (byte)',';
            }

            segment.CopyTo(destination[written..]);
            written += segment.Length;
            first = false;
        }

        if (first)
        {
            body.CopyTo(destination);
            return body.Length;
        }

        plan.Close.CopyTo(destination[written..]);
        written += plan.Close.Length;
        var tail = body[plan.End..];
        tail.CopyTo(destination[written..]);
        return written + tail.Length;
    }
}
