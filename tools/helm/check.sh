#!/usr/bin/env bash
# The chart's whole CI check, on a fresh machine: get helm (tools/helm/install-helm.sh,
# built with `go install`, cached outside the repository), `helm lint --strict`,
# `helm template` with the default values and with examples/values-production.yaml,
# offline validation of every rendered manifest against the Kubernetes schemas
# (kubernetes-validate, strict), then the chart tests in tests/helm.
#
#   tools/helm/check.sh            # from anywhere; exits non-zero on the first failure
#
# Environment: GRENSWACHT_HELM (a helm to use instead), GRENSWACHT_KUBE_VERSION
# (default 1.36.0), PYTHON (default .venv/bin/python of the checkout, else python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
KUBE_VERSION="${GRENSWACHT_KUBE_VERSION:-1.36.0}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
start=$(date +%s)

HELM="${GRENSWACHT_HELM:-}"
if [[ -z "$HELM" ]]; then
    HELM="$(tools/helm/install-helm.sh)"
fi
export GRENSWACHT_HELM="$HELM"
echo "check: $("$HELM" version --short) (ready after $(( $(date +%s) - start ))s)"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
CHART=helm/grenswacht

for name in default production; do
    args=()
    [[ "$name" == production ]] && args=(-f examples/values-production.yaml)
    echo "check: helm lint --strict ($name values)"
    "$HELM" lint --strict "$CHART" --kube-version "$KUBE_VERSION" "${args[@]}"
    echo "check: helm template ($name values)"
    "$HELM" template grenswacht "$CHART" --namespace grenswacht \
        --kube-version "$KUBE_VERSION" "${args[@]}" > "$out/$name.yaml"
    echo "check: kubernetes-validate --strict ($name values, Kubernetes $KUBE_VERSION)"
    # Custom resources (ServiceMonitor, Strimzi KafkaTopic) have no bundled schema: they are
    # reported as WARN and checked field by field in tests/helm instead.
    "$PYTHON" -m kubernetes_validate --strict --quiet -k "$KUBE_VERSION" "$out/$name.yaml"
done

if [[ -z "${GRENSWACHT_HELM_CHECK_NO_PYTEST:-}" ]]; then  # tools/test.sh runs them itself
    echo "check: pytest tests/helm"
    "$PYTHON" -m pytest tests/helm -q -p no:cacheprovider
fi
echo "check: chart OK in $(( $(date +%s) - start ))s"
