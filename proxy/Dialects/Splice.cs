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

    /// <summary>
    /// Length of the body with the history and the summary's <paramref name="instructions"/> (JSON string content)
    /// inserted where <see cref="SplicePlan.InstructionsStart"/> says; the summary as a message is one of the segments instead.
    /// </summary>
    public static int Length(int bodyLength, SplicePlan plan, ReadOnlySpan<ReadOnlyMemory<byte>> segments, ReadOnlySpan<byte> instructions) =>
        Length(bodyLength, plan, segments) + (InBody(plan, instructions)
            ? plan.InstructionsOpen.Length + instructions.Length + plan.InstructionsClose.Length - (plan.InstructionsEnd - plan.InstructionsStart)
            : 0);

    /// <summary>Whether the summary goes into the body outside the history (Anthropic's <c>system</c>).</summary>
    public static bool InBody(SplicePlan plan, ReadOnlySpan<byte> instructions) =>
        !instructions.IsEmpty && !plan.InstructionsAsMessage && plan.InstructionsStart >= 0;

    /// <summary>Writes the body with history and the summary's instructions (see <see cref="Length(int, SplicePlan, ReadOnlySpan{ReadOnlyMemory{byte}}, ReadOnlySpan{byte})"/>).</summary>
    public static int Write(
        ReadOnlySpan<byte> body, SplicePlan plan, ReadOnlySpan<ReadOnlyMemory<byte>> segments, ReadOnlySpan<byte> instructions, Span<byte> destination)
    {
        if (!InBody(plan, instructions))
        {
            return Write(body, plan, segments, destination);
        }

        // The two insertions never overlap: the summary's range is outside the history array.
        int start = plan.InstructionsStart, end = plan.InstructionsEnd;
        if (end <= plan.Start)
        {
            body[..start].CopyTo(destination);
            var written = start + WriteInstructions(plan, instructions, destination[start..]);
            return written + Write(body[end..], plan.Start - end, plan.End - end, plan, segments, destination[written..]);
        }

        var head = Write(body[..start], plan.Start, plan.End, plan, segments, destination);
        head += WriteInstructions(plan, instructions, destination[head..]);
        body[end..].CopyTo(destination[head..]);
        return head + body.Length - end;
    }

    private static int WriteInstructions(SplicePlan plan, ReadOnlySpan<byte> instructions, Span<byte> destination)
    {
        plan.InstructionsOpen.CopyTo(destination);
        var written = plan.InstructionsOpen.Length;
        instructions.CopyTo(destination[written..]);
        written += instructions.Length;
        plan.InstructionsClose.CopyTo(destination[written..]);
        return written + plan.InstructionsClose.Length;
    }

    /// <summary>Writes the spliced body into <paramref name="destination"/> (at least <see cref="Length(int, SplicePlan, ReadOnlySpan{ReadOnlyMemory{byte}})"/> bytes); returns the length.</summary>
    public static int Write(ReadOnlySpan<byte> body, SplicePlan plan, ReadOnlySpan<ReadOnlyMemory<byte>> segments, Span<byte> destination) =>
        Write(body, plan.Start, plan.End, plan, segments, destination);

    private static int Write(ReadOnlySpan<byte> body, int start, int end, SplicePlan plan, ReadOnlySpan<ReadOnlyMemory<byte>> segments, Span<byte> destination)
    {
        var head = body[..start];
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
        var tail = body[end..];
        tail.CopyTo(destination[written..]);
        return written + tail.Length;
    }
}
