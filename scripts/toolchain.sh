#!/usr/bin/env bash
# Builds (once) and caches the real binaries the local control plane needs.
# Each tool lives under $LOGTAIL_TOOLCHAIN_DIR/<tool>/<version>/ so bumping one
# version rebuilds only that tool; bin/ holds links to the versions in use.
set -euo pipefail

KUBE_VERSION="${LOGTAIL_KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${LOGTAIL_ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${LOGTAIL_HELM_VERSION:-v4.3.1}"
VERSITYGW_VERSION="${LOGTAIL_VERSITYGW_VERSION:-v1.8.0}"

DIR="${LOGTAIL_TOOLCHAIN_DIR:-$HOME/.cache/logtail/toolchain}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$DIR/bin"
mkdir -p "$DIR" "$BIN"

START=$(date +%s)
say() { printf '[toolchain +%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }

# A second CI clone or a parallel test run must not build the same tool twice.
exec 9>"$DIR/.lock"
if ! flock -n 9; then
  say "another toolchain build holds $DIR/.lock; waiting for it"
  flock 9
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

have() { [ -f "$DIR/$1/$2/.complete" ] && [ -x "$DIR/$1/$2/$3" ]; }

missing=()
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  for b in kube-apiserver etcd kubectl; do
    [ -x "$KUBEBUILDER_ASSETS/$b" ] || { echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $b" >&2; exit 1; }
  done
else
  have kube-apiserver "$KUBE_VERSION" kube-apiserver || missing+=("kube-apiserver (~8 min)")
  have kubectl "$KUBE_VERSION" kubectl || missing+=("kubectl (~1 min)")
  have etcd "$ETCD_VERSION" etcd || missing+=("etcd (~1 min)")
fi
have helm "$HELM_VERSION" helm || missing+=("helm (~4 min)")

# The hollow kubelet (hollow-kubelet/, a Go main module of this repository) is
# cached under a key that changes whenever a file under hollow-kubelet/ that
# goes into the binary does (tests and testdata do not).
HOLLOW_SRC="$REPO/hollow-kubelet"
HOLLOW_KEY=$(cd "$HOLLOW_SRC" && find . -type f ! -name "*_test.go" ! -path "*/testdata/*" -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
have hollow-kubelet "$HOLLOW_KEY" hollow-kubelet || missing+=("hollow-kubelet (~2 min after kube-apiserver, ~8 min cold)")
have versitygw "$VERSITYGW_VERSION" versitygw || missing+=("versitygw (~1.5 min)")

if [ ${#missing[@]} -gt 0 ]; then
  say "to build: ${missing[*]}; a cold toolchain takes ~15 minutes on 2 cores (cached afterwards in $DIR)"
  command -v go >/dev/null || { echo "go is required to build the toolchain (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
fi

# wrapper_module DIR MODULE@VERSION [replace lines...]: a throwaway main module
# whose only job is to pin the upstream module and build its commands.
wrapper_module() {
  local wd="$1"; shift
  rm -rf "$wd"; mkdir -p "$wd"
  (cd "$wd" && go mod init logtail.local/toolchain-wrapper >/dev/null 2>&1)
}

build_kube() {
  local wd="$DIR/src/kubernetes-$KUBE_VERSION"
  local staging="v0${KUBE_VERSION#v1}"
  say "kubernetes $KUBE_VERSION: resolving module and its staging replacements"
  wrapper_module "$wd"
  local gomod
  gomod=$(cd "$wd" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [ -f "$gomod" ] || { echo "could not download k8s.io/kubernetes@$KUBE_VERSION go.mod" >&2; exit 1; }
  local mods
  mods=$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod")
  local n; n=$(printf '%s\n' "$mods" | grep -c .)
  say "kubernetes $KUBE_VERSION: $n staging modules -> published $staging"
  {
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    for m in $mods; do echo "replace $m => $m $staging"; done
  } >> "$wd/go.mod"
  (cd "$wd" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION" >/dev/null)
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
  if ! have kubectl "$KUBE_VERSION" kubectl; then
    say "kubectl $KUBE_VERSION: go build"
    mkdir -p "$DIR/kubectl/$KUBE_VERSION"
    (cd "$wd" && go build -trimpath -ldflags "$ld" -o "$DIR/kubectl/$KUBE_VERSION/kubectl" k8s.io/kubernetes/cmd/kubectl)
    touch "$DIR/kubectl/$KUBE_VERSION/.complete"
  fi
  if ! have kube-apiserver "$KUBE_VERSION" kube-apiserver; then
    say "kube-apiserver $KUBE_VERSION: go build (the long one, ~8 min, ~2.3 GB RAM)"
    mkdir -p "$DIR/kube-apiserver/$KUBE_VERSION"
    (cd "$wd" && go build -trimpath -ldflags "$ld" -o "$DIR/kube-apiserver/$KUBE_VERSION/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
    touch "$DIR/kube-apiserver/$KUBE_VERSION/.complete"
  fi
  say "kubernetes $KUBE_VERSION: done"
}

build_etcd() {
  local wd="$DIR/src/etcd-$ETCD_VERSION"
  say "etcd $ETCD_VERSION: go get + go build"
  wrapper_module "$wd"
  (cd "$wd" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null)
  mkdir -p "$DIR/etcd/$ETCD_VERSION"
  (cd "$wd" && go build -trimpath -ldflags "-s -w" -o "$DIR/etcd/$ETCD_VERSION/etcd" go.etcd.io/etcd/server/v3)
  touch "$DIR/etcd/$ETCD_VERSION/.complete"
  say "etcd $ETCD_VERSION: done"
}

build_helm() {
  say "helm $HELM_VERSION: go install (~4 min)"
  mkdir -p "$DIR/helm/$HELM_VERSION"
  GOBIN="$DIR/helm/$HELM_VERSION" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  touch "$DIR/helm/$HELM_VERSION/.complete"
  say "helm $HELM_VERSION: done"
}

build_versitygw() {
  local wd="$DIR/src/versitygw-$VERSITYGW_VERSION"
  say "versitygw $VERSITYGW_VERSION: go get + go build"
  wrapper_module "$wd"
  (cd "$wd" && go get "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >/dev/null)
  mkdir -p "$DIR/versitygw/$VERSITYGW_VERSION"
  (cd "$wd" && go build -trimpath -ldflags "-s -w" -o "$DIR/versitygw/$VERSITYGW_VERSION/versitygw" github.com/versity/versitygw/cmd/versitygw)
  touch "$DIR/versitygw/$VERSITYGW_VERSION/.complete"
  say "versitygw $VERSITYGW_VERSION: done"
}

link() { ln -sfn "$1" "$BIN/$2.tmp" && mv -Tf "$BIN/$2.tmp" "$BIN/$2"; }

build_hollow_kubelet() {
  local out="$DIR/hollow-kubelet/$HOLLOW_KEY"
  # The kubelet code it runs is the k8s.io/kubernetes version its go.mod requires.
  local kv
  kv=$(sed -n 's#^[[:space:]]*k8s.io/kubernetes \(v[^[:space:]]*\)$#\1#p' "$HOLLOW_SRC/go.mod" | head -1)
  [ -n "$kv" ] || { echo "hollow-kubelet/go.mod does not require k8s.io/kubernetes" >&2; exit 1; }
  say "hollow-kubelet $HOLLOW_KEY (kubelet $kv): go build (~2 min when kube-apiserver's packages are cached, ~2 GB RAM)"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$kv -X k8s.io/client-go/pkg/version.gitVersion=$kv -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$kv" | cut -d. -f2)"
  mkdir -p "$out"
  (cd "$HOLLOW_SRC" && go build -mod=readonly -trimpath -ldflags "$ld" -o "$out/hollow-kubelet.tmp" .)
  mv -f "$out/hollow-kubelet.tmp" "$out/hollow-kubelet"
  touch "$out/.complete"
  link "$out/hollow-kubelet" hollow-kubelet
  say "hollow-kubelet $HOLLOW_KEY: done"
}

if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  have etcd "$ETCD_VERSION" etcd || build_etcd
  { have kube-apiserver "$KUBE_VERSION" kube-apiserver && have kubectl "$KUBE_VERSION" kubectl; } || build_kube
fi
have hollow-kubelet "$HOLLOW_KEY" hollow-kubelet || build_hollow_kubelet
have versitygw "$VERSITYGW_VERSION" versitygw || build_versitygw
have helm "$HELM_VERSION" helm || build_helm
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  for b in kube-apiserver etcd kubectl; do link "$KUBEBUILDER_ASSETS/$b" "$b"; done
else
  link "$DIR/kube-apiserver/$KUBE_VERSION/kube-apiserver" kube-apiserver
  link "$DIR/kubectl/$KUBE_VERSION/kubectl" kubectl
  link "$DIR/etcd/$ETCD_VERSION/etcd" etcd
fi
link "$DIR/helm/$HELM_VERSION/helm" helm
link "$DIR/versitygw/$VERSITYGW_VERSION/versitygw" versitygw
link "$DIR/hollow-kubelet/$HOLLOW_KEY/hollow-kubelet" hollow-kubelet

say "ready: $BIN"
echo "$BIN"
