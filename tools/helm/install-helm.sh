#!/usr/bin/env bash
# Get a pinned `helm` on a fresh machine of this kind: build it from source with
# `go install` through the Go module proxy (no prebuilt binary can be downloaded here).
# Installs into a cache directory outside the repository and prints the binary's path.
#
#   tools/helm/install-helm.sh            # -> ~/.cache/grenswacht/bin/helm-v3.21.4
#   HELM=$(tools/helm/install-helm.sh)    # use it
#
# Environment: GRENSWACHT_HELM_VERSION (default below), GRENSWACHT_CACHE
# (default ${XDG_CACHE_HOME:-~/.cache}/grenswacht). A helm already in the cache is reused.
set -euo pipefail

HELM_VERSION="${GRENSWACHT_HELM_VERSION:-v3.21.4}"
CACHE_DIR="${GRENSWACHT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/grenswacht}"
BIN_DIR="$CACHE_DIR/bin"
TARGET="$BIN_DIR/helm-$HELM_VERSION"

if [[ -x "$TARGET" ]]; then
    echo "$TARGET"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "install-helm: 'go' is not on PATH; cannot build helm $HELM_VERSION" >&2
    exit 1
fi

mkdir -p "$BIN_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "install-helm: building helm $HELM_VERSION with $(go version | cut -d' ' -f3) ..." >&2
# CGO off: a static binary, no C toolchain needed. -trimpath/-s -w: smaller, reproducible.
# The -X flags are the ones helm's own Makefile sets: its version, and the Kubernetes version
# `helm template`/`lint` assume (from the client-go it is built with: v0.36 -> 1.36).
K8S_MAJOR="${GRENSWACHT_HELM_K8S_MAJOR:-1}"
K8S_MINOR="${GRENSWACHT_HELM_K8S_MINOR:-36}"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=$K8S_MAJOR"
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$K8S_MINOR"
done
CGO_ENABLED=0 GOBIN="$work" GOFLAGS="-trimpath" \
    go install -ldflags="$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
mv "$work/helm" "$TARGET"
ln -sf "helm-$HELM_VERSION" "$BIN_DIR/helm"
echo "install-helm: built $TARGET in $(( $(date +%s) - start ))s" >&2
echo "$TARGET"
