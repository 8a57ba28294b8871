using System.Text;
using Mnemo.Proxy.Dialects;

namespace Mnemo.Proxy.Tests.Dialects;

public sealed class JsonEscapesTests
{
    [TestCase("""{"a":"plain"}""", false)]
    [TestCase("""{"a":"\ud83d\ude00"}""", false)]
    [TestCase("""{"a":"\uD83D\uDE00 twice \ud83d\ude00"}""", false)]
    [TestCase("""{"a":"\\ud800"}""", false)]
    [TestCase("""{"a":"\u0041\u00e9"}""", false)]
    [TestCase("""{"a":"\ud800"}""", true)]
    [TestCase("""{"a":"\udc00"}""", true)]
    [TestCase("""{"a":"\ud83dx"}""", true)]
    [TestCase("""{"a":"\ud83d\u0041"}""", true)]
    [TestCase("""{"a":"\\\ud800"}""", true)]
    [TestCase("""{"\ud800":1}""", true)]
    [TestCase("""{"a":"\ud83d""", true)]
    public void HasLoneSurrogate_FindsOnlyUnpairedHalves(string json, bool expected) =>
        Assert.That(JsonEscapes.HasLoneSurrogate(Encoding.UTF8.GetBytes(json)), Is.EqualTo(expected), json);
}
