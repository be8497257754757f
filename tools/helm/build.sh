#!/usr/bin/env bash
# Builds the pinned helm v3 CLI from the Go module proxy into a per-version cache outside the checkout, and
# puts next to it the Prometheus Operator CRDs (ServiceMonitor, PodMonitor, PrometheusRule) from the same
# proxy, so the chart's optional monitoring objects can be validated against their real schemas. A second run with the
# same inputs is a no-op. Prints the path of the helm binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prometheus_operator_version=v0.85.0
helm_version="$(grep -Eo "helm.sh/helm/v3 v[0-9.]+" "$here/go.mod" | head -1 | cut -d" " -f2)"
key="$(cat "$here/go.mod" "$here/go.sum" "$0" | sha256sum | cut -c1-12)"
out="${MSQ_HELM_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/msq-relayer/helm-${helm_version}-${key}}"

if [[ -x "$out/helm" && -f "$out/monitoring-crds/prometheusrules.yaml" ]]; then echo "$out/helm"; exit 0; fi

command -v go >/dev/null || { echo "go toolchain not found (needed once to build helm $helm_version)" >&2; exit 1; }
mkdir -p "$out.tmp/monitoring-crds"
cd "$here"
if [[ ! -x "$out.tmp/helm" ]]; then
  # helm's own Makefile derives the Kubernetes version its lint rules and default capabilities assume from
  # the client-go it is built with; without these flags they fall back to an older hard-coded version.
  client_go="$(GOFLAGS=-mod=mod go list -f '{{.Version}}' -m k8s.io/client-go)"
  k8s_major=$(( $(echo "${client_go#v}" | cut -d. -f1) + 1 ))
  k8s_minor="$(echo "${client_go#v}" | cut -d. -f2)"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${helm_version}"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X ${pkg}.k8sVersionMajor=${k8s_major} -X ${pkg}.k8sVersionMinor=${k8s_minor}"
  done
  echo "building helm $helm_version ..." >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out.tmp/helm" helm.sh/helm/v3/cmd/helm
fi
# Outside any module, so the download cannot touch this module's go.sum; the checksum database still
# verifies the zip.
src="$(cd / && GOFLAGS= go mod download -json "github.com/prometheus-operator/prometheus-operator@${prometheus_operator_version}" \
  | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')"
for kind in servicemonitors podmonitors prometheusrules; do
  cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_${kind}.yaml" "$out.tmp/monitoring-crds/${kind}.yaml"
done
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out/helm"
