#!/usr/bin/env bash
# The whole test suite against a real Apache Kafka broker started for this run (and
# stopped whatever happens), then the Helm chart check. Called by `make test` / .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
broker_dir="$(mktemp -d -t gw-ci-kafka-XXXXXX)"
stop_broker() { "$BIN/python" tools/kafka/broker.py stop --dir "$broker_dir" >/dev/null 2>&1 || true; rm -rf "$broker_dir"; }
trap stop_broker EXIT
"$BIN/python" tools/kafka/broker.py start --dir "$broker_dir"
export GRENSWACHT_TEST_KAFKA_DIR="$broker_dir"
export GRENSWACHT_TEST_KAFKA="$("$BIN/python" tools/kafka/broker.py status --dir "$broker_dir" | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["bootstrap"])')"
status=0
"$BIN/pytest" -q --durations=15 "$@" || status=$?
if [ "$status" -eq 5 ]; then echo "no tests ran"; exit 1; fi
[ "$status" -eq 0 ] || exit "$status"
bash tools/helm/check.sh
