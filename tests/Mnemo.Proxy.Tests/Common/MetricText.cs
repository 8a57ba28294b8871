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

    /// <summary>The sum of a metric's series over every label set (<c>name{…} v</c> and <c>name v</c>), 0 when it has none.</summary>
    public static double Sum(string exposition, string name)
    {
        var sum = 0.0;
        foreach (var line in exposition.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && line.Length > name.Length && line[name.Length] is '{' or ' ')
            {
                sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }
}
