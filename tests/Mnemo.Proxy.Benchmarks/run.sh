#!/usr/bin/env bash
# The whole benchmark in one command: installs redis-server when missing, builds in Release, then runs
#   run.sh            the load benchmark: prints the table, writes artifacts/benchmark.json (about 8 minutes)
#   run.sh --smoke    the same with tiny runs (seconds; checks the harness, not the numbers)
#   run.sh micro ...  the BenchmarkDotNet micro-benchmarks (arguments go to BenchmarkDotNet, e.g. --filter '*')
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=../tools.sh
. ../tools.sh
ensure redis-server:redis-server
log "dotnet build -c Release"
dotnet build -c Release -v quiet --nologo >&2
exec dotnet bin/Release/net10.0/Mnemo.Proxy.Benchmarks.dll "$@"
