#!/usr/bin/env bash
# Build the pinned Kubernetes control-plane binaries (etcd, kube-apiserver,
# kube-controller-manager, kubectl) and helm from the Go module proxy into a
# cache outside the repository. Reused across runs; rebuilt only when pins.env
# changes. Prints the bin directory on the last line of stdout.
#
# k8s.io/kubernetes cannot be `go install`ed directly because its go.mod
# replaces the staging modules with local paths; we build it through a tiny
# wrapper module that requires it and pins every k8s.io/* staging module to the
# matching v0.x.y with replace lines derived from the upstream go.mod.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$here/pins.env"
key=$(cat "$here/pins.env" "$here/build.sh" | sha256sum | cut -c1-12)
cache=${SWITCHMAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchman}
root="$cache/cluster-$key"
bin="$root/bin"
log() { printf '[cluster-build] %s\n' "$*" >&2; }

if [ -f "$bin/.complete" ]; then
  log "cached: $bin"
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { log "go is required (https://go.dev/dl)"; exit 1; }
mkdir -p "$bin" "$root/src"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
start=$(date +%s)
k8s_minor=${KUBERNETES_VERSION#v1.}
staging_version="v0.${k8s_minor}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1"
  ldflags+=" -X $pkg.gitMinor=${k8s_minor%%.*} -X $pkg.gitTreeState=clean"
done

build_kubernetes() {
  local w="$root/src/kubernetes"
  mkdir -p "$w"
  log "downloading k8s.io/kubernetes@$KUBERNETES_VERSION (module proxy)"
  local upstream_mod
  upstream_mod=$(cd "$w" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module switchman.local/k8s-build"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$upstream_mod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } >"$w/go.mod"
  cat >"$w/tools.go" <<'GO'
//go:build tools

package tools
GO
  local pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
  log "resolving dependencies of ${pkgs[*]}"
  (cd "$w" && go get "${pkgs[@]/%/@$KUBERNETES_VERSION}" >&2)
  for p in "${pkgs[@]}"; do
    log "building $(basename "$p") (this is the slow part on a cold cache)"
    (cd "$w" && go build -trimpath -ldflags "$ldflags" -o "$bin/" "$p")
  done
}

build_etcd() {
  # etcd's server module also carries replace directives, so it too goes
  # through a wrapper module; its sibling modules are published at the same tag.
  local w="$root/src/etcd"
  mkdir -p "$w"
  log "building etcd $ETCD_VERSION"
  printf 'module switchman.local/etcd-build\n\ngo 1.24.0\n' >"$w/go.mod"
  (cd "$w" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 &&
    go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
}

build_helm() {
  log "building helm $HELM_VERSION"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

[ -x "$bin/etcd" ] || build_etcd
[ -x "$bin/helm" ] || build_helm
[ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kubectl" ] || build_kubernetes
for b in etcd kube-apiserver kube-controller-manager kubectl helm; do
  [ -x "$bin/$b" ] || { log "missing $b after build"; exit 1; }
done
touch "$bin/.complete"
log "built in $(( $(date +%s) - start )) s: $bin"
echo "$bin"
