#!/usr/bin/env bash
# The Helm chart check, then the whole test suite against a real Apache Kafka broker
# started for this run (and stopped whatever happens). Called by `make test` / .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
broker_dir="$(mktemp -d -t gw-ci-kafka-XXXXXX)"
stop_broker() { "$BIN/python" tools/kafka/broker.py stop --dir "$broker_dir" >/dev/null 2>&1 || true; rm -rf "$broker_dir"; }
trap stop_broker EXIT
# the chart first (builds helm with `go install` on a fresh machine, ~3 min): lint,
# render, validate offline; tests/helm then run with the rest
export GRENSWACHT_HELM="$(bash tools/helm/install-helm.sh)"
GRENSWACHT_HELM_CHECK_NO_PYTEST=1 bash tools/helm/check.sh
"$BIN/python" tools/kafka/broker.py start --dir "$broker_dir"
# the session fixture (tests/plugins/kafka.py) reuses this broker; given the directory
# rather than host:port it also knows the SCRAM listener
export GRENSWACHT_TEST_KAFKA="$broker_dir"
status=0
"$BIN/pytest" -q --durations=15 "$@" || status=$?
if [ "$status" -eq 5 ]; then echo "no tests ran"; exit 1; fi
exit "$status"
