"""Per-reply physics as one vectorised comparison in ClickHouse (issue 17): the analysis
stores each vantage point's lower bound to the US (``vantage_points.us_distance_km``,
migration 070), and the ``reply_physics`` view compares every answered reply with it. On
real RIPE Atlas results its answer equals the Python bound (``physics.us_bound``) reply for
reply, and the bound each hop verdict stored."""

from __future__ import annotations

from consumers.analysis import analyse_windows
from consumers.enrich.physics import us_bound
from consumers.home import VerdictSettings
from consumers.pipeline import AnalysisContext
from consumers.storage import Storage
from tests.consumers.test_home_verdicts import (
    APPS,
    FACEBOOK,
    GOOGLE_NEWS,
    WIKIPEDIA,
    Pair,
    enricher_and_registry,  # noqa: F401 - the module's fixture
    file_results,
    ingest,
)

_REPLIES_SQL = """
SELECT source, measurement_id, probe_id, toUnixTimestamp(timestamp) AS ts,
       destination_address, hop, reply_index, vantage_point, probe_public_address, rtt_ms
FROM traceroute_hops FINAL WHERE NOT is_timeout AND rtt_ms IS NOT NULL
"""
_VIEW_SQL = """
SELECT source, measurement_id, probe_id, toUnixTimestamp(timestamp), destination_address,
       hop, reply_index, vantage_key, bound_km, us_distance_km, us_possible
FROM reply_physics
"""


def test_clickhouse_compares_every_reply_as_python_does(
        storage: Storage, enricher_and_registry: Pair) -> None:  # noqa: F811
    windows = ingest(storage, file_results(WIKIPEDIA) + file_results(GOOGLE_NEWS)
                     + file_results(FACEBOOK))
    enricher, registry = enricher_and_registry
    stats = analyse_windows(storage, None, AnalysisContext(enricher, registry, APPS,
                                                           VerdictSettings()), windows)
    assert stats.failing == {}
    view = {row[:7]: row[7:] for row in storage.query(_VIEW_SQL).rows}
    python = {}
    for row in storage.query(_REPLIES_SQL).rows:
        *key, vantage_point, public, rtt = row
        vantage = registry.resolve(int(key[2]), str(vantage_point), str(public))
        if vantage is not None:
            bound = us_bound(float(rtt), vantage)
            python[tuple(key)] = (vantage.key, bound.bound_km, bound.us_distance_km,
                                  bound.us_possible)
    assert len(python) > 3000
    assert view == python
    provable = sum(1 for *_, possible in python.values() if not possible)
    assert 0 < provable < len(python)  # both answers occur
    # each hop verdict stored the bound of its hop's fastest reply
    stored = storage.query("""
        SELECT count(), countIf(h.us_distance_km != p.us_distance_km
                                OR h.bound_km != p.fastest)
        FROM hop_verdicts AS h FINAL
        INNER JOIN (SELECT source, measurement_id, probe_id, timestamp, destination_address,
                           hop, reply_address, min(bound_km) AS fastest,
                           any(us_distance_km) AS us_distance_km
                    FROM reply_physics
                    GROUP BY source, measurement_id, probe_id, timestamp,
                             destination_address, hop, reply_address) AS p
        USING (source, measurement_id, probe_id, timestamp, destination_address, hop,
               reply_address)""").rows[0]
    assert stored[0] > 1000 and stored[1] == 0, stored
