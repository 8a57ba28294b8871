using System.Text;
using System.Text.Json;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>Text of JSON values, for tests that look for what they sent or what the upstream answered.</summary>
public static class JsonText
{
    /// <summary>Every string value inside a JSON value, decoded, in document order, each followed by a newline.</summary>
    public static string Strings(JsonElement value)
    {
        var text = new StringBuilder();
        Collect(value);
        return text.ToString();

        void Collect(JsonElement element)
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.String:
                    text.Append(element.GetString()).Append('\n');
                    break;
                case JsonValueKind.Array:
                    foreach (var item in element.EnumerateArray())
                    {
                        Collect(item);
                    }

                    break;
                case JsonValueKind.Object:
                    foreach (var property in element.EnumerateObject())
                    {
                        Collect(property.Value);
                    }

                    break;
            }
        }
    }
}
