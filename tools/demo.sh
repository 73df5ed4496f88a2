#!/usr/bin/env bash
# The whole flow offline: a loopback RIPE Atlas (tests/fakes/atlas, serving recorded real
# results over HTTPS + websocket with a test CA) and `grenswacht run` pointed at it, in a
# throw-away data directory. The scheduler reconciles the example inventory against the
# fake, streams the results it releases every 2 s, and the analysis consumer keeps the
# verdicts current. Ctrl-C stops both. Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
work="$(mktemp -d -t gw-demo-XXXXXX)"
"$BIN/python" -m tests.fakes.atlas --port 0 --stream-port 0 --dir "$work/atlas" > "$work/fake.log" 2>&1 &
fake=$!
trap 'kill $fake 2>/dev/null || true; wait $fake 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "GRENSWACHT_ATLAS__PROBE_METADATA__ENABLED" "$work/fake.log" 2>/dev/null && break; sleep 0.1; done
eval "$(grep '^  export ' "$work/fake.log")"
export GRENSWACHT_DATA_DIR="$work/data"
echo "data: $GRENSWACHT_DATA_DIR   (query: GRENSWACHT_DATA_DIR=$work/data $BIN/grenswacht sql …)"
"$BIN/grenswacht" --config examples/grenswacht.toml run
