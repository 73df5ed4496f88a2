"""With ``grenswacht run`` and a configured webhook, a replayed change produces one
delivered alert (firing, then resolved when the change goes away)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.alerts import replay
from tests.alerts.conftest import PROBE_FILES, SECRET, Receiver
from tests.running import wait_running


def gw(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "grenswacht.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"grenswacht {' '.join(args)}: {done.stderr}"
    return done


def test_grenswacht_run_delivers_one_alert_for_a_replayed_change(
        tmp_path: Path, webhook_receiver: Receiver) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ, "GRENSWACHT_DATA_DIR": str(data), "COLUMNS": "200",
        "XDG_CONFIG_HOME": str(tmp_path / "config"), "GRENSWACHT_SERVER__PORT": "0",
        "GRENSWACHT_ALERTS__WEBHOOK_URL": webhook_receiver.url,
        "GRENSWACHT_ALERTS__WEBHOOK_SECRET": SECRET,
        "GRENSWACHT_ALERTS__DISPATCH_INTERVAL_S": "0.2",
        "GRENSWACHT_JURISDICTION__ATLAS_PROBE_FILES": json.dumps([str(p) for p in PROBE_FILES]),
    }
    process = subprocess.Popen([sys.executable, "-m", "grenswacht.cli", "run"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_running(data, process)
        gw(env, "ingest", str(replay.DETOUR_FILE))
        got = webhook_receiver.wait_for(2)
        assert webhook_receiver.rejected == []
        assert [d["alert"]["state"] for d in got] == ["firing", "resolved"]
        assert len({d["alert"]["alert_id"] for d in got}) == 1
        assert "US" in got[0]["alert"]["after"]["physical"]
        status = json.loads(gw(env, "status", "-f", "json").stdout)[0]
        assert status["components"]["alerts"]["delivery"]["delivered"] == 2
        listed = json.loads(gw(env, "alerts", "list", "-f", "json").stdout)
        assert [(a["state"], a["after"]) for a in listed] == [("resolved", "routed_via_us")]
        # an officer acknowledges it while `run` holds the store: through the endpoint
        alert_id = got[0]["alert"]["alert_id"]
        acked = gw(env, "alerts", "ack", alert_id[:8], "-m", "seen, asked the supplier")
        assert alert_id in acked.stdout
        acks = json.loads(gw(env, "sql", "SELECT alert_id, comment FROM alert_acks FINAL",
                             "-f", "json").stdout)
        assert acks == [{"alert_id": alert_id, "comment": "seen, asked the supplier"}]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert len(webhook_receiver.settle()) == 2  # nothing more arrives after the stop
