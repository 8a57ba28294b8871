namespace Mnemo.Proxy.Dialects;

/// <summary>Checks on the escapes of JSON text that a reader would only trip over later.</summary>
internal static class JsonEscapes
{
    /// <summary>
    /// Whether a <c>\uD800</c>-<c>\uDFFF</c> escape appears other than as a high surrogate followed at once by a low one.
    /// Emoji escaped as pairs (as <c>ensure_ascii</c> serialisers write them) are fine.
    /// </summary>
    /// <remarks>One vectorised search for <c>\u</c>; bodies without escapes cost a single pass.</remarks>
    public static bool HasLoneSurrogate(ReadOnlySpan<byte> json)
    {
        var offset = 0;
        while (true)
        {
            var found = json[offset..].IndexOf("\\u"u8);
            if (found < 0)
            {
                return false;
            }

            var at = offset + found;
            offset = at + 2;
            if (!IsEscape(json, at) || !TryHex(json, at + 2, out var unit))
            {
                continue;
            }

            if (unit is >= 0xDC00 and <= 0xDFFF)
            {
                return true;
            }

            if (unit is >= 0xD800 and <= 0xDBFF)
            {
                // The next escape must be the low half, right after this one.
                if (at + 12 > json.Length || json[at + 6] != (byte)'\\' || json[at + 7] != (byte)'u'
                    || !TryHex(json, at + 8, out var low) || low is < 0xDC00 or > 0xDFFF)
                {
                    return true;
                }

                offset = at + 12;
            }
        }
    }

    /// <summary>The backslash at <paramref name="at"/> starts an escape: it is preceded by an even number of backslashes.</summary>
    private static bool IsEscape(ReadOnlySpan<byte> json, int at)
    {
        var backslashes = 0;
        for (var i = at - 1; i >= 0 && json[i] == (byte)'\\'; i--)
        {
            backslashes++;
        }

        return backslashes % 2 == 0;
    }

    private static bool TryHex(ReadOnlySpan<byte> json, int at, out int value)
    {
        value = 0;
        if (at + 4 > json.Length)
        {
            return false;
        }

        for (var i = at; i < at + 4; i++)
        {
            var digit = HexDigit(json[i]);
            if (digit < 0)
            {
                return false;
            }

            value = (value << 4) | digit;
        }

        return true;
    }

    private static int HexDigit(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };
}
