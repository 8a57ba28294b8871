using System.Globalization;

namespace Mnemo.Proxy.Tests.Common;

/// <summary>Reads a Prometheus text exposition (a proxy's <c>/metrics</c>), for the tests and the benchmark.</summary>
public static class MetricText
{
    /// <summary>One series' value by its exact name and labels (<c>name{label="v"}</c>), NaN when absent.</summary>
    public static double Value(string exposition, string series)
    {
        foreach (var line in exposition.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return double.NaN;
    }
}
