"""The web UI and the report on real data: the bundled RIPE Atlas results (Wikipedia's
esams site, a CloudFront CDN destination, DNS answers) ingested into the session store,
analysed (hop, path and application verdicts, findings), the inventory of
tests/fixtures/web/apps.toml loaded, one alert stored, and ``grenswacht run``'s endpoint
serving it on loopback.

The store is prepared once per test module (ingest and analysis take a while); the tests
here only read it, except the acknowledgement, which adds a row nobody else asserts on.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consumers.alerts.store import AlertStore
from consumers.analysis import analyse_windows, unanalysed_windows
from consumers.enrich import JurisdictionSettings
from consumers.home import VerdictSettings
from consumers.ingest import IngestConsumer
from consumers.storage import Storage
from grenswacht.embedded import Embedded, analysis_context
from grenswacht.files import read_results
from grenswacht.settings import ServerSettings, Settings
from schemas import topics
from schemas.alerts import Alert, JurisdictionState
from schemas.bus import open_bus

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ATLAS = FIXTURES / "atlas"
INVENTORY = FIXTURES / "web" / "apps.toml"
RESULTS = [
    *sorted((ATLAS / "traceroute").glob("*.jsonl")),
    *sorted((ATLAS / "bulk_samples").glob("*.jsonl.gz")),
    FIXTURES / "verdicts" / "googlenews_nl_us.jsonl.gz",
    ATLAS / "dns" / "ripe_atlas_tools_tests.jsonl",
    ATLAS / "dns" / "sagan_tests.jsonl",
]
PROBE_FILES = sorted((ATLAS / "api").glob("pierky_*_probes_api_v2.json"))
APPLICATIONS = ("Wikipedia", "Google Nieuws", "Vivacom (IPv6)", "Kenya Education Network",
                "Nieuwsportaal (CloudFront)", "Facebook", "RIPE NCC", "Microsoft 365")
ALERT_ID = "web-test-alert-wikipedia-0001"
_NAMES = itertools.count()


@dataclass
class Site:
    url: str
    token: str
    storage: Storage
    app: Embedded


def settings_for(tmp: Path, chdb_dsn: str, home_countries: tuple[str, ...] = ("NL",)
                 ) -> Settings:
    return Settings(data_dir=tmp / "data", storage=chdb_dsn,
                    bus=f"memory://web-{next(_NAMES)}", server=ServerSettings(port=0),
                    jurisdiction=JurisdictionSettings(atlas_probe_files=PROBE_FILES),
                    atlas={"inventory": INVENTORY, "probe_metadata": {"enabled": False}},
                    verdicts=VerdictSettings(home_countries=list(home_countries)))


def _empty(storage: Storage) -> None:
    tables = storage.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND engine LIKE '%MergeTree' AND name != 'schema_migrations'").rows
    for (name,) in tables:
        storage.command(f"TRUNCATE TABLE {name}")


def prepare(storage: Storage, cfg: Settings) -> None:
    """Ingest :data:`RESULTS`, analyse every window, load the inventory, store an alert."""
    _empty(storage)
    name = f"web-prepare-{next(_NAMES)}"
    bus = open_bus(f"memory://{name}")
    for path in RESULTS:
        for record in read_results(path):
            bus.publish(topics.RESULTS, record.value, key=record.key, headers=record.headers)
    bus.close()
    IngestConsumer(open_bus(f"memory://{name}"), storage, group="ingest").drain(idle_timeout=0)
    windows = unanalysed_windows(storage, cfg.analysis.window_s)
    assert windows
    stats = analyse_windows(storage, None, analysis_context(cfg, storage), windows,
                            window_s=cfg.analysis.window_s)
    assert stats.failures == 0, stats.last_error
    seen = dt.datetime(2013, 10, 17, 10, tzinfo=dt.UTC)
    AlertStore(storage).save_alerts([Alert(
        alert_id=ALERT_ID, application="Wikipedia", vantage_set="nl", address_family=4,
        municipalities=["Utrecht", "Zwolle"], first_seen=seen, last_seen=seen,
        before=JurisdictionState(verdict="eu_hosted_eu_operated", physical=["NL"]),
        after=JurisdictionState(verdict="hosted_in_us", physical=["US"]),
        summary="Wikipedia: NL -> US")])


@pytest.fixture(scope="module")
def home_countries() -> tuple[str, ...]:
    """Where the home vantage points are (a test module may choose others)."""
    return ("NL",)


@pytest.fixture(scope="module")
def site(session_storage: Storage, chdb_dsn: str, tmp_path_factory: pytest.TempPathFactory,
         home_countries: tuple[str, ...]) -> Iterator[Site]:
    cfg = settings_for(tmp_path_factory.mktemp("web"), chdb_dsn, home_countries)
    prepare(session_storage, cfg)
    app = Embedded(cfg)
    app.start(only=set())
    assert app.token is not None
    try:
        yield Site(app.url, app.token.value, session_storage, app)
    finally:
        app.stop()
