using System.Text.Json;
using Mnemo.Proxy.History;

namespace Mnemo.Proxy.Health;

/// <summary>
/// <c>/healthz/live</c>: the process serves HTTP. <c>/healthz/ready</c>: the store has answered since start and the
/// process is not shutting down. A Redis outage after start keeps the pod ready (it serves without memory, marked
/// degraded) so that an outage of the shared store does not take every replica out of its Service at once.
/// </summary>
internal static class HealthEndpoints
{
    public static IApplicationBuilder UseMnemoHealth(this IApplicationBuilder app)
    {
        app.Map("/healthz/live", live => live.Run(static context => WriteAsync(context, StatusCodes.Status200OK, "live", null, null)));
        app.Map("/healthz/ready", ready => ready.Run(ReadyAsync));
        return app;
    }

    private static async Task ReadyAsync(HttpContext context)
    {
        var lifetime = context.RequestServices.GetRequiredService<IHostApplicationLifetime>();
        var store = context.RequestServices.GetRequiredService<IHistoryStore>();
        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            await WriteAsync(context, StatusCodes.Status503ServiceUnavailable, "stopping", store.Name, null).ConfigureAwait(false);
            return;
        }

        var status = await store.CheckAsync(context.RequestAborted).ConfigureAwait(false);
        await WriteAsync(
            context,
            status.Ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable,
            status.Ready ? "ready" : "not_ready",
            store.Name,
            status.Detail).ConfigureAwait(false);
    }

    private static async Task WriteAsync(HttpContext context, int statusCode, string status, string? store, string? detail)
    {
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        using (var writer = new Utf8JsonWriter(context.Response.BodyWriter))
        {
            writer.WriteStartObject();
            writer.WriteString("status"u8, status);
            if (store is not null)
            {
                writer.WriteString("store"u8, store);
            }

            if (detail is not null)
            {
                writer.WriteString("detail"u8, detail);
            }

            writer.WriteEndObject();
        }

        await context.Response.BodyWriter.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }
}
