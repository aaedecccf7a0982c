#!/usr/bin/env bash
# Builds the e2e test cluster's control plane (etcd, kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl) from the release pinned in go.mod/go.sum, into a cache folder
# outside the checkout, keyed by the pin: rebuilt only when go.mod, go.sum, etcd/main.go or this
# script change.
#
#   build.sh            build, or reuse the cached build; prints where the binaries are
#   build.sh --force    rebuild even if the cached build is complete
#   build.sh --bin-dir  print the folder the binaries of this pin live in (builds nothing)
#
# Cache: ${BF_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bf-jupyter/controlplane}/<key>/bin/
# A missing Go or an unreachable module proxy ends the build with one line saying so (exit 1).
set -euo pipefail

readonly BINARIES=(etcd kube-apiserver kube-scheduler kube-controller-manager kubectl)
readonly PACKAGES=(
  ./etcd
  k8s.io/kubernetes/cmd/kube-apiserver
  k8s.io/kubernetes/cmd/kube-scheduler
  k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kubectl
)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
self="$here/$(basename "${BASH_SOURCE[0]}")"
cd "$here"

fail() {
  echo "cluster-binaries: $*" >&2
  exit 1
}

# The pinned versions, read from go.mod itself so that the pin lives in one place.
module_version() {
  awk -v module="$1" '$1 == module && $2 ~ /^v/ { print $2; exit }' go.mod
}
kubernetes_version="$(module_version k8s.io/kubernetes)"
etcd_version="$(module_version go.etcd.io/etcd/server/v3)"
[[ -n "$kubernetes_version" && -n "$etcd_version" ]] ||
  fail "go.mod in $here does not require k8s.io/kubernetes and go.etcd.io/etcd/server/v3"

digest="$(cat go.mod go.sum etcd/main.go "$self" | sha256sum)"
key="kubernetes-${kubernetes_version}-etcd-${etcd_version}-${digest:0:12}"
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

complete() {
  [[ -f "$1/stamp" ]] || return 1
  local name
  for name in "${BINARIES[@]}"; do
    [[ -x "$1/bin/$name" ]] || return 1
  done
}

if [[ $force == 0 ]] && complete "$target"; then
  echo "cluster-binaries: up to date in $target/bin"
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

# The version stamps kubectl version and the apiserver's /version report, as a release build sets them.
minor="${kubernetes_version#v1.}"
minor="${minor%%.*}"
ldflags=(-s -w)
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=(
    -X "$package.gitVersion=$kubernetes_version"
    -X "$package.gitMajor=1"
    -X "$package.gitMinor=$minor"
    -X "$package.gitTreeState=clean"
  )
done

echo "cluster-binaries: building Kubernetes $kubernetes_version and etcd $etcd_version into $target (a first build takes a while)"
mkdir -p "$work/bin"
go build -trimpath -ldflags "${ldflags[*]}" -o "$work/bin/" "${PACKAGES[@]}" ||
  fail "go build of the control plane failed (see the errors above)"

printf 'kubernetes %s\netcd %s\n%s\nkey %s\n' \
  "$kubernetes_version" "$etcd_version" "$(go version)" "$key" >"$work/stamp"
rm -f "$work/download.log"

# The rename makes the complete build visible at once (replacing an incomplete or --force'd one).
rm -rf "$target.old"
if [[ -e "$target" ]]; then mv -T "$target" "$target.old"; fi
mv -T "$work" "$target"
rm -rf "$target.old"
trap - EXIT
echo "cluster-binaries: built into $target/bin"
