#!/usr/bin/env bash
# Builds the helm that the e2e tests install cluster/helm/bf-jupyter with, from the release pinned in
# go.mod/go.sum of this folder (a module of its own, so that moving helm never invalidates the cached
# control plane of ../go.mod), into a cache folder outside the checkout, keyed by the pin: rebuilt
# only when go.mod, go.sum or this script change.
#
#   build.sh            build, or reuse the cached build; prints where the binary is
#   build.sh --force    rebuild even if the cached build is complete
#   build.sh --bin-dir  print the folder the binary of this pin lives in (builds nothing)
#
# Cache: ${BF_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bf-jupyter/controlplane}/<key>/bin/helm
# A missing Go or an unreachable module proxy ends the build with one line saying so (exit 1).
set -euo pipefail

readonly PACKAGE=helm.sh/helm/v4/cmd/helm

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
self="$here/$(basename "${BASH_SOURCE[0]}")"
cd "$here"

fail() {
  echo "helm-binary: $*" >&2
  exit 1
}

# The pinned version, read from go.mod itself so that the pin lives in one place.
helm_version="$(awk '$1 == "helm.sh/helm/v4" && $2 ~ /^v/ { print $2; exit }' go.mod)"
[[ -n "$helm_version" ]] || fail "go.mod in $here does not require helm.sh/helm/v4"

digest="$(cat go.mod go.sum "$self" | sha256sum)"
key="helm-${helm_version}-${digest:0:12}"
cache_root="${BF_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bf-jupyter/controlplane}"
target="$cache_root/$key"

force=0
case "${1:-}" in
  --bin-dir)
    echo "$target/bin"
    exit 0
    ;;
  --force) force=1 ;;
  "") ;;
  *) fail "unknown argument ${1}: use --force or --bin-dir" ;;
esac

if [[ $force == 0 && -f "$target/stamp" && -x "$target/bin/helm" ]]; then
  echo "helm-binary: up to date in $target/bin"
  exit 0
fi

command -v go >/dev/null || fail "Go is not installed: put go (>= $(awk '$1 == "go" { print $2 }' go.mod)) on PATH"

# go.sum is the checksum pin: never let the build rewrite go.mod or go.sum.
export GOFLAGS=-mod=readonly

mkdir -p "$cache_root"
work="$(mktemp -d "$cache_root/.build-$key.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Modules come from the module cache when present, else from GOPROXY: a failure here means the proxy
# is unreachable (or refuses a module), which deserves one clear line rather than Go's page of errors.
if ! go mod download >"$work/download.log" 2>&1; then
  fail "cannot download the modules pinned in $here/go.sum from $(go env GOPROXY): $(grep -m1 -E 'dial|timeout|refused|no such host|[45][0-9][0-9] ' "$work/download.log" || tail -n1 "$work/download.log")"
fi

# The version stamp `helm version` reports, as helm's own release build sets it.
ldflags=(
  -s -w
  -X "helm.sh/helm/v4/internal/version.version=$helm_version"
  -X "helm.sh/helm/v4/internal/version.gitTreeState=clean"
)

echo "helm-binary: building helm $helm_version into $target"
mkdir -p "$work/bin"
go build -trimpath -ldflags "${ldflags[*]}" -o "$work/bin/helm" "$PACKAGE" ||
  fail "go build of helm failed (see the errors above)"

printf 'helm %s\n%s\nkey %s\n' "$helm_version" "$(go version)" "$key" >"$work/stamp"
rm -f "$work/download.log"

# The rename makes the complete build visible at once (replacing an incomplete or --force'd one).
rm -rf "$target.old"
if [[ -e "$target" ]]; then mv -T "$target" "$target.old"; fi
mv -T "$work" "$target"
rm -rf "$target.old"
trap - EXIT
echo "helm-binary: built into $target/bin"
