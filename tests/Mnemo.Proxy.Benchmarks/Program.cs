using System.Globalization;
using BenchmarkDotNet.Running;
using Mnemo.Proxy.Benchmarks.Load;

// load (default): the end-to-end benchmark. micro: BenchmarkDotNet hot-path benchmarks.
// upstream: the fake LLM, started by the load benchmark as its own process.
switch (args.FirstOrDefault())
{
    case "upstream":
        var port = int.Parse(Arg(args, "--port", "0"), CultureInfo.InvariantCulture);
        await BenchUpstream.RunAsync(port, new BenchUpstream.Defaults(
            int.Parse(Arg(args, "--tokens", "20"), CultureInfo.InvariantCulture),
            int.Parse(Arg(args, "--ttfb-ms", "0"), CultureInfo.InvariantCulture),
            int.Parse(Arg(args, "--token-delay-ms", "0"), CultureInfo.InvariantCulture)));
        return 0;
    case "micro":
        BenchmarkSwitcher.FromAssembly(typeof(LoadBenchmark).Assembly).Run(args[1..]);
        return 0;
    default:
        return await LoadBenchmark.RunAsync(BenchOptions.Parse(args));
}

static string Arg(string[] args, string name, string fallback)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : fallback;
}
