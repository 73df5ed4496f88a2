"""The alerts component on the real memory bus and the real chDB store, delivering to
loopback receivers: outage then recovery, restart, replay."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from consumers.alerts import AlertsComponent, AlertSettings
from consumers.analysis import analyse_windows
from consumers.enrich import Enricher, VantageRegistry
from consumers.ingest import IngestConsumer
from consumers.pipeline import AnalysisContext
from consumers.storage import Storage
from grenswacht.cli import app as cli_app
from schemas import topics
from schemas.alerts import Alert
from schemas.bus import Bus, open_bus
from tests.alerts import replay
from tests.alerts.conftest import SECRET, Receiver

_COUNTER = iter(range(1_000_000))


@pytest.fixture()
def bus_url() -> str:
    return f"memory://alerts-{next(_COUNTER)}"


@pytest.fixture()
def publish(storage: Storage, bus_url: str,
            enricher_and_registry: tuple[Enricher, VantageRegistry]) -> Any:
    """Results -> ingest -> the analysis (one pass per window) -> verdicts on the bus."""
    context = AnalysisContext(*enricher_and_registry)

    def send(results: list[dict[str, Any]]) -> None:
        name = f"{bus_url}-results"
        producer = open_bus(name)
        for result in results:
            producer.publish(topics.RESULTS, orjson.dumps(result),
                             key=topics.result_key(result),
                             headers=[(topics.HEADER_SOURCE, b"atlas")])
        producer.flush()
        IngestConsumer(open_bus(name), storage, group="ingest").drain(idle_timeout=0)
        bus = open_bus(bus_url)
        analyse_windows(storage, bus, context, {r["timestamp"] // 3600 * 3600 for r in results})
        bus.close()

    return send


def settings_for(receiver: Receiver, **extra: Any) -> AlertSettings:
    return AlertSettings(webhook_url=receiver.url, webhook_secret=SECRET,
                         retry_initial_s=0.1, retry_max_s=0.5, dispatch_interval_s=0.05,
                         **extra)


def drain(component: AlertsComponent) -> None:
    while component.poll_once(timeout=0.2):
        pass


def run_until(component: AlertsComponent, condition: Any, timeout: float = 300.0) -> None:
    """Run the component in a thread until ``condition`` holds (a hang guard of minutes), then
    stop it and wait until it has stopped: afterwards nothing is delivered any more."""
    stop = threading.Event()
    thread = threading.Thread(target=component.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            assert time.monotonic() < deadline, "the condition never held"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(120)
    assert not thread.is_alive(), "the component did not stop"


@pytest.fixture()
def component_factory(storage: Storage, bus_url: str) -> Iterator[Any]:
    made: list[Bus] = []

    def make(settings: AlertSettings) -> AlertsComponent:
        bus = open_bus(bus_url)
        made.append(bus)
        return AlertsComponent(settings, storage, bus)

    yield make
    for bus in made:
        bus.close()


def test_replayed_detour_is_stored_published_and_delivered_once(
        storage: Storage, bus_url: str, publish: Any, webhook_receiver: Receiver,
        component_factory: Any) -> None:
    publish(replay.detour_sequence())
    component = component_factory(settings_for(webhook_receiver))
    run_until(component, lambda: len(webhook_receiver.received) >= 2)
    got = webhook_receiver.wait_for(2)
    assert webhook_receiver.rejected == []
    assert [d["alert"]["state"] for d in got] == ["firing", "resolved"]
    assert [d["_delivery"] for d in got] == [d["delivery_id"] for d in got]
    alert_id = got[0]["alert"]["alert_id"]
    rows = storage.query("SELECT alert_id, state, application, severity, first_seen, "
                         "last_seen FROM alerts FINAL").rows
    assert [(r[0], r[1]) for r in rows] == [(alert_id, "resolved")]
    # published on the alerts topic
    reader = open_bus(bus_url)
    reader.subscribe([topics.ALERTS], "test-reader")
    published = [Alert.from_json(m.value) for m in reader.poll(100, timeout=1.0)]
    reader.close()
    assert [(a.alert_id, a.state) for a in published] == [(alert_id, "firing"),
                                                          (alert_id, "resolved")]
    # a restart (new component, same store and group) sends nothing again
    restarted = component_factory(settings_for(webhook_receiver))
    drain(restarted)
    assert restarted.dispatcher is not None and restarted.dispatcher.dispatch() == 0
    assert len(webhook_receiver.received) == 2
    # the whole sequence replayed on the topic: no new alert, nothing delivered
    publish(replay.detour_sequence())
    drain(restarted)
    assert restarted.dispatcher.dispatch() == 0
    assert storage.query("SELECT count() FROM alerts FINAL").rows == [(1,)]
    assert len(webhook_receiver.received) == 2


def test_receiver_outage_then_recovery_delivers_each_alert_once(
        storage: Storage, bus_url: str, publish: Any, webhook_receiver: Receiver,
        alertmanager_receiver: Receiver, component_factory: Any) -> None:
    webhook_receiver.stop()
    alertmanager_receiver.stop()
    publish(replay.detour_sequence())
    cfg = settings_for(webhook_receiver, alertmanager_url=alertmanager_receiver.url,
                       alertmanager_resend_s=3600)
    component = component_factory(cfg)
    drain(component)
    assert component.dispatcher is not None
    deadline = time.monotonic() + 300  # retries after a back-off of 0.1 s, then 0.2 s
    while component.dispatcher.stats.failed_attempts < 2:
        assert time.monotonic() < deadline, component.dispatcher.stats
        assert component.dispatcher.dispatch() == 0
        time.sleep(0.05)
    pending = storage.query("SELECT count() FROM alert_deliveries FINAL "
                            "WHERE status = 'pending'").rows
    assert pending == [(4,)]  # 2 alert versions x 2 channels, nothing lost
    # the process restarts while the receivers are still down, then they come back
    restarted = component_factory(cfg)
    drain(restarted)
    webhook_receiver.start()
    alertmanager_receiver.start()
    run_until(restarted, lambda: len(webhook_receiver.received) >= 2
              and len(alertmanager_receiver.received) >= 2)
    hooks = webhook_receiver.received
    assert sorted(d["delivery_id"] for d in hooks) == sorted({d["delivery_id"] for d in hooks})
    assert [d["alert"]["state"] for d in hooks] == ["firing", "resolved"]
    managed = alertmanager_receiver.received
    assert len(managed) == 2
    firing, resolved = managed
    assert firing["labels"]["alertname"] == "GrenswachtJurisdictionChange"
    assert firing["labels"]["application"] == "wikipedia-lb.esams.wikimedia.org"
    assert firing["endsAt"] > firing["startsAt"]
    assert resolved["labels"] == firing["labels"]
    assert resolved["endsAt"] == hooks[1]["alert"]["resolved_at"].replace("+00:00", "Z")
    assert storage.query("SELECT status, count() FROM alert_deliveries FINAL "
                         "GROUP BY status").rows == [("delivered", 4)]


def test_cli_lists_shows_and_acknowledges(storage: Storage, bus_url: str, publish: Any,
                                          webhook_receiver: Receiver, component_factory: Any,
                                          chdb_dsn: str, tmp_path: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    publish(replay.detour_sequence()[:60])  # the detour, not yet its removal
    component = component_factory(settings_for(webhook_receiver))
    drain(component)
    monkeypatch.setenv("GRENSWACHT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["alerts", "list", "--storage", chdb_dsn, "-f", "json"])
    assert listed.exit_code == 0, listed.output
    (row,) = orjson.loads(listed.output)
    assert row["state"] == "firing" and row["after"] == "routed_via_us"
    shown = runner.invoke(cli_app, ["alerts", "show", row["alert_id"][:8], "--storage",
                                    chdb_dsn])
    assert shown.exit_code == 0, shown.output
    assert "4.69.144.143" in shown.output and "physically passes US" in shown.output
    acked = runner.invoke(cli_app, ["alerts", "ack", row["alert_id"], "--storage", chdb_dsn,
                                    "-m", "known maintenance", "--by", "officer"])
    assert acked.exit_code == 0, acked.output
    document = orjson.loads(runner.invoke(cli_app, ["alerts", "show", row["alert_id"],
                                                    "--storage", chdb_dsn, "-f", "json"]).output)
    assert document["acknowledged"]["by"] == "officer"
    assert document["evidence"][0]["result"]["measurement_id"] == 1033154


def test_ack_needs_an_exact_id_or_a_unique_prefix_of_8(
        storage: Storage, publish: Any, webhook_receiver: Receiver, component_factory: Any,
        chdb_dsn: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from consumers.alerts.store import AlertIdError, AlertStore

    publish(replay.detour_sequence()[:60])
    drain(component_factory(settings_for(webhook_receiver)))
    store = AlertStore(storage)
    (alert,) = store.firing()
    for bad in ("", "   ", alert.alert_id[:7]):
        with pytest.raises(AlertIdError):
            store.get_alert(bad)
    found = store.get_alert(alert.alert_id[:8])
    assert found is not None and found[0].alert_id == alert.alert_id
    twin = Alert.model_validate({**alert.model_dump(), "alert_id": alert.alert_id[:8] + "f" * 12})
    store.save_alerts([twin])
    with pytest.raises(AlertIdError, match="more than one"):
        store.get_alert(alert.alert_id[:8])
    exact = store.get_alert(alert.alert_id)  # an exact id is never ambiguous
    assert exact is not None and exact[0].alert_id == alert.alert_id
    monkeypatch.setenv("GRENSWACHT_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    for bad in ("", alert.alert_id[:8]):
        refused = runner.invoke(cli_app, ["alerts", "ack", bad, "--storage", chdb_dsn])
        assert refused.exit_code != 0
        assert "alert id" in refused.output
    assert storage.query("SELECT count() FROM alert_acks").rows == [(0,)]
