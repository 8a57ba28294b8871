using Mnemo.Proxy.Metrics;

namespace Mnemo.Proxy.Dialects;

/// <summary>Every dialect Mnemo has, by id and by request path.</summary>
internal sealed class DialectRegistry
{
    private readonly Dialect[] _byId = new Dialect[DialectLabels.Count];
    private readonly Dialect[] _all;

    public DialectRegistry()
    {
        _all = [new OpenAIChatDialect(), new AnthropicMessagesDialect(), new OpenAIResponsesDialect(), new OllamaChatDialect()];
        foreach (var dialect in _all)
        {
            _byId[(int)dialect.Id] = dialect;
        }
    }

    public IReadOnlyList<Dialect> All => _all;

    /// <summary>The dialect of <paramref name="id"/>, or null for <see cref="DialectId.Other"/> or one not built.</summary>
    public Dialect? Get(DialectId id) => _byId[(int)id];

    /// <summary>The dialect whose path suffix a POST request's path ends with.</summary>
    public Dialect? ByPath(HttpRequest request)
    {
        foreach (var dialect in _all)
        {
            if (dialect.Matches(request))
            {
                return dialect;
            }
        }

        return null;
    }
}
