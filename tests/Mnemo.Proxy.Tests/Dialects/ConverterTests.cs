using System.Text;
using System.Text.Json;
using Mnemo.Proxy.Dialects;
using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Tests.Dialects;

public sealed class ConverterTests
{
    private const string OllamaToolTurn =
        """{"role":"user","content":"weather?"},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]}""";

    private const string OllamaResultTurn =
        """{"role":"tool","content":"sunny","tool_name":"get_weather"},{"role":"assistant","content":"It is sunny."}""";

    [Test]
    public void Convert_IdLessCalls_GetIdsFromTheirTurn_StableAcrossRequests_AndUniqueAcrossTurns()
    {
        var converter = new Converter(new DialectRegistry(), new MnemoMetrics());
        ForeignTurn[] turns =
        [
            Turn(OllamaToolTurn, "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"),
            Turn(OllamaResultTurn, "0190a1b2c3d47e5f8a9b0c1d2e3f4a5c"),
            Turn(OllamaToolTurn, "0190a1b2c3d47e5f8a9b0c1d2e3f4a5d"),
            Turn(OllamaResultTurn, "0190a1b2c3d47e5f8a9b0c1d2e3f4a5e"),
        ];

        var first = converter.Convert(new OpenAIChatDialect(), turns);
        var again = converter.Convert(new OpenAIChatDialect(), turns);
        Assert.That(again, Is.EqualTo(first), "the same turns convert to the same bytes on every request");

        using var document = JsonDocument.Parse("[" + Encoding.UTF8.GetString(first) + "]");
        var messages = document.RootElement.EnumerateArray().ToList();
        var calls = messages.Where(m => m.TryGetProperty("tool_calls", out _)).Select(m => m.GetProperty("tool_calls")[0].GetProperty("id").GetString()).ToList();
        var results = messages.Where(m => m.GetProperty("role").GetString() == "tool").Select(m => m.GetProperty("tool_call_id").GetString()).ToList();
        Assert.That(calls, Is.EqualTo(new[] { "call_0c1d2e3f4a5b_1", "call_0c1d2e3f4a5d_1" }));
        Assert.That(results, Is.EqualTo(calls), "each result is paired with its own call, not the other turn's");
    }

    [Test]
    public void Convert_AStoredTurnThatDoesNotRead_IsLeftOutAndCounted_TheOthersConvert()
    {
        var metrics = new MnemoMetrics();
        var converter = new Converter(new DialectRegistry(), metrics);
        ForeignTurn[] turns =
        [
            Turn("""{"role":"user","content":"kept"},{"role":"assistant","content":"yes"}""", "0190a1b2c3d47e5f8a9b0c1d2e3f4a51"),
            Turn("""{"role":"user","content":"cut""", "0190a1b2c3d47e5f8a9b0c1d2e3f4a52"),
        ];

        var converted = Encoding.UTF8.GetString(converter.Convert(new OpenAIChatDialect(), turns));

        using var document = JsonDocument.Parse("[" + converted + "]");
        Assert.That(document.RootElement.GetArrayLength(), Is.EqualTo(2));
        Assert.That(converted, Does.Contain("kept").And.Not.Contain("cut"));
    }

    private static ForeignTurn Turn(string messages, string id) =>
        new(DialectId.OllamaChat, Encoding.UTF8.GetBytes(messages), Encoding.ASCII.GetBytes(id));
}
