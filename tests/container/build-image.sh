#!/usr/bin/env bash
# Builds the repository's Dockerfile with buildah (chroot isolation), base images never pulled.
#
# No registry is reachable here, so when the Dockerfile's base images are not in local storage this builds stand-ins
# under their names, labelled mnemo.stand-in=true (a real image of that name, if present, is used as it is):
#   mcr.microsoft.com/dotnet/sdk:10.0                  a minimal Debian root (debootstrap) with this machine's .NET SDK
#                                                       and certificate authorities (NuGet is reached as this machine does)
#   mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled only the .NET and ASP.NET runtimes, shared libraries, CA
#                                                       certificates and the numeric app user 1654: no shell, no tools
# Usage: tests/container/build-image.sh [tag]   (default localhost/mnemo:test). Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../tools.sh
. tests/tools.sh

tag="${1:-localhost/mnemo:test}"
cache="${MNEMO_CONTAINER_CACHE:-/var/tmp/mnemo-container}"
sdk_image="mcr.microsoft.com/dotnet/sdk:10.0"
runtime_image="mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled"

ensure buildah:buildah debootstrap:debootstrap
[ "$(id -u)" -eq 0 ] || { log "error: buildah with chroot isolation needs root here"; exit 1; }

image_exists() { buildah images --quiet "$1" 2>/dev/null | grep -q .; }

dotnet_root() {
  local sdk
  sdk="$(dotnet --list-sdks | tail -n 1 | sed -n 's/.*\[\(.*\)\]/\1/p')"
  [ -n "$sdk" ] || { log "error: no .NET SDK found"; return 1; }
  dirname "$sdk"
}

# The Debian mirror apt is configured with (this machine reaches Debian only through it).
debian_mirror() {
  local uri
  uri="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)"
  [ -n "$uri" ] || uri="$(sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\/debian\)\/\{0,1\}[[:space:]].*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)"
  printf '%s' "${uri:-http://deb.debian.org/debian}"
}

debian_root() {
  local rootfs="$cache/rootfs"
  if [ ! -x "$rootfs/usr/bin/bash" ]; then
    log "debootstrap: minimal Debian bookworm root in $rootfs from $(debian_mirror)"
    rm -rf "$rootfs"
    mkdir -p "$cache"
    debootstrap --variant=minbase --include=ca-certificates,libicu72,libssl3,zlib1g,libstdc++6,libgcc-s1 \
      bookworm "$rootfs" "$(debian_mirror)" >&2
  fi
  printf '%s' "$rootfs"
}

build_sdk() {
  local rootfs=$1 root=$2 ctr
  log "stand-in $sdk_image: Debian root + the .NET SDK in $root"
  ctr="$(buildah from scratch)"
  buildah copy --quiet "$ctr" "$rootfs" / >/dev/null
  buildah copy --quiet "$ctr" "$root" /usr/share/dotnet >/dev/null
  buildah copy --quiet "$ctr" /etc/ssl/certs /etc/ssl/certs >/dev/null
  buildah run --isolation chroot "$ctr" -- /bin/ln -sf /usr/share/dotnet/dotnet /usr/bin/dotnet
  buildah config --label mnemo.stand-in=true \
    --env DOTNET_CLI_TELEMETRY_OPTOUT=1 --env DOTNET_NOLOGO=1 --env DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --workingdir / "$ctr"
  buildah commit --quiet --rm "$ctr" "$sdk_image" >/dev/null
}

build_runtime() {
  local rootfs=$1 root=$2 stage ctr
  log "stand-in $runtime_image: the runtimes from $root, shared libraries, no shell"
  stage="$(mktemp -d)"
  mkdir -p "$stage/usr/lib" "$stage/usr/share/dotnet/shared" "$stage/usr/bin" "$stage/etc" "$stage/tmp" "$stage/home/app"
  cp -a "$rootfs/usr/lib/x86_64-linux-gnu" "$stage/usr/lib/"
  cp -a "$rootfs/usr/lib64" "$stage/usr/"
  ln -s usr/lib "$stage/lib"
  ln -s usr/lib64 "$stage/lib64"
  cp -a "$rootfs/etc/ssl" "$stage/etc/"
  mkdir -p "$stage/usr/share"
  cp -a "$rootfs/usr/share/ca-certificates" "$stage/usr/share/"
  cp -a "$root/dotnet" "$root/host" "$stage/usr/share/dotnet/"
  cp -a "$root/shared/Microsoft.NETCore.App" "$root/shared/Microsoft.AspNetCore.App" "$stage/usr/share/dotnet/shared/"
  ln -s ../share/dotnet/dotnet "$stage/usr/bin/dotnet"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\napp:x:1654:1654::/home/app:/usr/sbin/nologin\n' > "$stage/etc/passwd"
  printf 'root:x:0:\napp:x:1654:\n' > "$stage/etc/group"
  chmod 1777 "$stage/tmp"
  chown 1654:1654 "$stage/home/app"
  ctr="$(buildah from scratch)"
  buildah copy --quiet "$ctr" "$stage" / >/dev/null
  buildah config --label mnemo.stand-in=true --env APP_UID=1654 --env ASPNETCORE_HTTP_PORTS=8080 \
    --env DOTNET_RUNNING_IN_CONTAINER=true --env PATH=/usr/local/bin:/usr/bin:/bin --user 1654 --workingdir / "$ctr"
  buildah commit --quiet --rm "$ctr" "$runtime_image" >/dev/null
  rm -rf "$stage"
}

if ! image_exists "$sdk_image" || ! image_exists "$runtime_image"; then
  rootfs="$(debian_root)"
  root="$(dotnet_root)"
  image_exists "$sdk_image" || build_sdk "$rootfs" "$root"
  image_exists "$runtime_image" || build_runtime "$rootfs" "$root"
fi

log "buildah bud -t $tag (pull=never)"
buildah bud --isolation chroot --pull=never --layers -t "$tag" -f Dockerfile . >&2
