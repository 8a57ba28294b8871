using System.IO.Pipelines;
using System.Text.Json;
using Mnemo.Proxy.History;
using Mnemo.Proxy.Sessions;

namespace Mnemo.Proxy.Admin;

/// <summary>
/// Writes a session as JSON, from what the store holds: each turn's id, time, dialect, model, messages (the stored bytes,
/// in the dialect's own request format), usage and token count; the summary; the totals and, with prices configured,
/// the cost. Streamed turn by turn: a session can hold many large turns.
/// </summary>
internal static class SessionExport
{
    public static async Task WriteAsync(PipeWriter output, SessionKey session, SessionRecord record, Pricing pricing, CancellationToken cancellationToken)
    {
        using var writer = new Utf8JsonWriter(output);
        writer.WriteStartObject();
        writer.WriteString("tenant"u8, session.Tenant);
        writer.WriteString("session"u8, session.Id);
        writer.WriteStartArray("turns"u8);
        foreach (var element in record.Elements)
        {
            WriteTurn(writer, element.Span);
            writer.Flush();
            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        writer.WriteEndArray();
        if (record.Summary is { } summary)
        {
            writer.WriteStartObject("summary"u8);
            writer.WritePropertyName("text"u8);
            // Stored as the content of a JSON string, escaped, ready to splice: quoted, it is the string itself.
            var quoted = new byte[summary.Text.Length + 2];
            quoted[0] = quoted[^1] = (byte)'"';
            summary.Text.CopyTo(quoted.AsSpan(1));
            writer.WriteRawValue(quoted);
            writer.WriteString("covers_through_turn"u8, summary.CoveredId);
            writer.WriteNumber("tokens"u8, summary.Tokens);
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteNull("summary"u8);
        }

        WriteTotals(writer, record, pricing);
        if (record.ExpiresIn is { } expires && expires > TimeSpan.Zero)
        {
            writer.WriteNumber("expires_in_seconds"u8, (long)expires.TotalSeconds);
        }

        writer.WriteEndObject();
        writer.Flush();
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One stored element as an exported turn; an element this version cannot read is exported as <c>{"unreadable":true}</c>.</summary>
    private static void WriteTurn(Utf8JsonWriter writer, ReadOnlySpan<byte> element)
    {
        string? id = null, dialect = null, model = null;
        long time = 0;
        var tokens = -1L;
        ReadOnlySpan<byte> messages = default, usage = default;
        try
        {
            var reader = new Utf8JsonReader(element);
            reader.Read();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.ValueSpan;
                reader.Read();
                if (name.SequenceEqual("id"u8))
                {
                    id = reader.GetString();
                }
                else if (name.SequenceEqual("d"u8))
                {
                    dialect = reader.GetString();
                }
                else if (name.SequenceEqual("m"u8))
                {
                    model = reader.GetString();
                }
                else if (name.SequenceEqual("ts"u8))
                {
                    _ = reader.TryGetInt64(out time);
                }
                else if (name.SequenceEqual("tok"u8))
                {
                    _ = reader.TryGetInt64(out tokens);
                }
                else if (name.SequenceEqual("messages"u8) || name.SequenceEqual("usage"u8))
                {
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    var value = element[start..(int)reader.BytesConsumed];
                    if (name[0] == (byte)'m')
                    {
                        messages = value;
                    }
                    else
                    {
                        usage = value;
                    }
                }
                else
                {
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            id = null;
        }

        writer.WriteStartObject();
        if (id is null || messages.IsEmpty)
        {
            writer.WriteBoolean("unreadable"u8, true);
            writer.WriteEndObject();
            return;
        }

        writer.WriteString("id"u8, id);
        AdminApi.WriteTime(writer, "time"u8, time);
        writer.WriteString("dialect"u8, dialect);
        writer.WriteString("model"u8, model);
        writer.WritePropertyName("messages"u8);
        writer.WriteRawValue(messages, skipInputValidation: true);
        WriteUsage(writer, usage);
        if (tokens >= 0)
        {
            writer.WriteNumber("tokens"u8, tokens);
        }

        writer.WriteEndObject();
    }

    /// <summary>The stored usage, with null where the upstream reported nothing (stored as -1); null when none at all.</summary>
    private static void WriteUsage(Utf8JsonWriter writer, ReadOnlySpan<byte> usage)
    {
        if (usage.IsEmpty)
        {
            writer.WriteNull("usage"u8);
            return;
        }

        writer.WriteStartObject("usage"u8);
        var reader = new Utf8JsonReader(usage);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString()!;
            reader.Read();
            if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0)
            {
                writer.WriteNumber(name, value);
            }
            else
            {
                writer.WriteNull(name);
            }
        }

        writer.WriteEndObject();
    }

    private static void WriteTotals(Utf8JsonWriter writer, SessionRecord record, Pricing pricing)
    {
        var totals = record.Totals;
        writer.WriteStartObject("totals"u8);
        writer.WriteNumber("turns_stored"u8, record.Elements.Count);
        writer.WriteNumber("turns_written"u8, totals.Turns);
        AdminApi.WriteTime(writer, "last_activity"u8, totals.LastTurnMs);
        WriteTokens(writer, totals.All);
        decimal cost = 0;
        var priced = pricing.Enabled;
        long pricedInput = 0, pricedOutput = 0;
        writer.WriteStartObject("by_model"u8);
        foreach (var (model, perModel) in totals.ByModel)
        {
            writer.WriteStartObject(model);
            WriteTokens(writer, perModel);
            if (pricing.Cost(model, perModel) is { } modelCost)
            {
                writer.WriteNumber("cost"u8, modelCost);
                cost += modelCost;
                pricedInput += perModel.Input;
                pricedOutput += perModel.Output;
            }

            writer.WriteEndObject();
        }

        writer.WriteEndObject();
        if (priced)
        {
            writer.WriteNumber("cost"u8, cost);
            writer.WriteString("currency"u8, pricing.Currency);
            // False when some tokens have no price: turns without a model, or models the price table does not name.
            writer.WriteBoolean("cost_covers_all_tokens"u8, pricedInput == totals.All.Input && pricedOutput == totals.All.Output);
        }

        writer.WriteEndObject();
    }

    private static void WriteTokens(Utf8JsonWriter writer, TokenTotals totals)
    {
        writer.WriteNumber("input_tokens"u8, totals.Input);
        writer.WriteNumber("output_tokens"u8, totals.Output);
        writer.WriteNumber("cache_read_tokens"u8, totals.CacheRead);
        writer.WriteNumber("cache_write_tokens"u8, totals.CacheWrite);
    }
}

/// <summary>The configured price table: a model's cost from its token totals.</summary>
internal sealed class Pricing(PricingOptions options)
{
    private const decimal PerMillion = 1_000_000m;

    public bool Enabled => options.Models.Count > 0;

    public string Currency => options.Currency;

    /// <summary>
    /// The cost of the tokens, or null when no price names the model (exact name first, then the longest <c>prefix*</c>).
    /// Input tokens include the cached parts; those are priced at their own rates when given.
    /// </summary>
    public decimal? Cost(string model, TokenTotals tokens)
    {
        ModelPrice? price = null;
        foreach (var candidate in options.Models)
        {
            if (string.Equals(candidate.Model, model, StringComparison.Ordinal))
            {
                price = candidate;
                break;
            }

            if (candidate.Model.EndsWith('*') && model.StartsWith(candidate.Model.AsSpan(0, candidate.Model.Length - 1), StringComparison.Ordinal)
                && (price is null || candidate.Model.Length > price.Model.Length))
            {
                price = candidate;
            }
        }

        if (price is null)
        {
            return null;
        }

        var uncached = Math.Max(0, tokens.Input - tokens.CacheRead - tokens.CacheWrite);
        var cost = (uncached * price.Input)
            + (tokens.CacheRead * (price.CacheRead ?? price.Input))
            + (tokens.CacheWrite * (price.CacheWrite ?? price.Input))
            + (tokens.Output * price.Output);
        return cost / PerMillion;
    }
}
