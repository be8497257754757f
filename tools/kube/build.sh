#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kubectl from the Go module proxy into a
# per-version cache outside the checkout; a second run with the same go.mod/go.sum is a no-op.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
k8s_version="$(grep -Eo "k8s.io/kubernetes v[0-9.]+" "$here/go.mod" | head -1 | cut -d" " -f2)"
key="$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)"
out="${MSQ_KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/msq-relayer/kube-${k8s_version}-${key}}"
bins=(etcd kube-apiserver kube-controller-manager kubectl)

have_all=1
for b in "${bins[@]}"; do [[ -x "$out/$b" ]] || have_all=0; done
if [[ $have_all == 1 ]]; then echo "$out"; exit 0; fi

command -v go >/dev/null || { echo "go toolchain not found (needed once to build Kubernetes $k8s_version)" >&2; exit 1; }
mkdir -p "$out.tmp"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${k8s_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$k8s_version" | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=${k8s_version}"
cd "$here"
declare -A pkgs=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
)
for b in "${bins[@]}"; do
  [[ -x "$out.tmp/$b" ]] && continue
  echo "building $b (Kubernetes $k8s_version) ..." >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out.tmp/$b" "${pkgs[$b]}"
done
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
