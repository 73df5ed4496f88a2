"""The detectors on recorded RIPE Atlas results (no stubs: real rows from schemas.normalize,
real bundled geo data and probe metadata)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consumers.enrich import JurisdictionSettings, Vantage, VantageRegistry, open_enricher
from consumers.enrich.physics import great_circle_km
from consumers.graph import DETECTORS, anycast, build_graph, detect_all, load_balancer, us_transit
from consumers.graph.build import Window
from consumers.graph.window import window_from_rows
from tests.enrich.conftest import PROBE_FILES
from tests.graph.conftest import ATLAS, EVERYTHING, GRAPH, normalized, read_lines


def chaos_window(
    path: Path = ATLAS / "bulk_samples" / "cloudflare_chaos.jsonl.gz",
) -> tuple[list[dict[str, Any]], Window]:
    """The Cloudflare CHAOS id.server answers with the probe positions the collector added
    (src_lat/src_lon: ground truth for where each probe is)."""
    results = list(read_lines(path))
    registry = VantageRegistry(atlas={
        r["prb_id"]: Vantage(f"atlas:{r['prb_id']}", r["src_lat"], r["src_lon"], 10.0,
                             r.get("country_code") or "", "collector-added src_lat/src_lon",
                             "high") for r in results})
    batch = normalized(results)
    window = window_from_rows(*EVERYTHING, [], dns_rows=batch.as_dicts("dns_answers"),
                              registry=registry)
    return results, window


def test_detectors_are_registered_in_order() -> None:
    assert DETECTORS == (load_balancer.detect, anycast.detect, us_transit.detect)


def test_route_change_is_not_a_load_balancer() -> None:
    batch = normalized(read_lines(GRAPH / "menog_ae_two_series.jsonl.gz"))
    window = window_from_rows(*EVERYTHING, batch.as_dicts("traceroute_hops"))
    findings = load_balancer.detect(window)
    changes = [f for f in findings if f.kind == "route_change"]
    balancers = [f for f in findings if f.kind == "load_balancer"]
    # probe 50297 -> 185.92.128.25: every paris_id (0-15) moved from one branch to the other
    assert changes and all(f.destination_address == "185.92.128.25" for f in changes)
    first = min(changes, key=lambda f: f.evidence["changed_at"])
    assert first.evidence["before"] == ["10.246.249.94"]
    assert first.evidence["after"] == ["10.246.249.93"]
    assert set(first.evidence["flows_per_successor"]["10.246.249.93"]) == set(range(16))
    # probe 3029 -> 105.203.255.77: branches alternate while paris_id rotates
    [balancer] = balancers
    assert balancer.destination_address == "105.203.255.77"
    assert balancer.evidence["divergence"] == "77.67.76.41"
    assert {b[1] for b in balancer.evidence["branches"]} == {"213.200.119.30",
                                                              "213.200.126.145"}
    assert balancer.evidence["mode"] == "per_flow"
    # ICMP flows are not kept on one branch per paris_id: flagged, not hidden
    assert balancer.confidence == "low" and balancer.evidence["flow_stability"] < 0.8


def test_graph_has_silent_placeholders_and_flow_counts() -> None:
    batch = normalized(read_lines(GRAPH / "menog_ae_two_series.jsonl.gz"))
    window = window_from_rows(*EVERYTHING, batch.as_dicts("traceroute_hops"))
    traces, _ = window.by_destination()["105.203.255.77"]
    graph = build_graph(traces)
    assert graph.nodes["atlas:3029"]["kind"] == "vantage"
    assert graph.nodes["105.203.255.77"]["kind"] == "destination"
    silent = [n for n, d in graph.nodes(data=True) if d["kind"] == "silent"]
    assert all(n.startswith("*") and "@" in n for n in silent)
    out_of_vantage = sum(d["count"] for _, _, d in graph.out_edges("atlas:3029", data=True))
    assert out_of_vantage == len(traces)
    assert set(graph.edges["77.67.76.41", "213.200.119.30"]["flows"]) <= set(range(16))


def test_chaos_site_names_alone_give_a_medium_anycast_finding() -> None:
    """The 40-result sample: four site names (AMS, CDG, JNB, LHR), no physics proof from
    these probes (all in Africa; the far sites are reached with large RTTs)."""
    results, window = chaos_window()
    [finding] = anycast.detect(window)
    assert finding.subject == "173.245.58.117"
    truth = {r["result"]["answers"][0]["RDATA"] for r in results}
    assert set(finding.evidence["site_names"]) == truth
    assert finding.confidence in ("high", "medium")
    # every probe of this sample is outside the Netherlands: the summary must say so
    # instead of passing the nearest probe's site off as the one Dutch users reach
    assert finding.summary.startswith("anycast; no Dutch vantage point saw it; the one "
                                      "nearest the Netherlands reaches")


def test_cloudflare_anycast_is_proven_by_physics(shared_atlas: Path) -> None:
    results, window = chaos_window(
        shared_atlas / "bulk" / "cloudflare_anycast_chaos_2015" / "dns_augmented.jsonl.gz")
    [finding] = anycast.detect(window)
    assert finding.subject == "173.245.58.117"
    discs = finding.evidence["disjoint_discs"]
    assert len(discs) >= 2
    a, b = discs[0], discs[1]
    assert great_circle_km(a["latitude"], a["longitude"], b["latitude"], b["longitude"]) > (
        a["radius_km"] + b["radius_km"])
    # every disjoint disc is a different site in the ground truth (no false split)
    site_of = {f"atlas:{r['prb_id']}": r["result"]["answers"][0]["RDATA"] for r in results
               if r["result"].get("answers")}
    assert len({site_of[d["vantage"]] for d in discs}) == len(discs)


def test_unicast_destinations_are_not_anycast() -> None:
    """Wikipedia esams (one site, Amsterdam) seen from 70+ probes with known positions."""
    enricher, registry = open_enricher(JurisdictionSettings(atlas_probe_files=PROBE_FILES))
    batch = normalized(read_lines(ATLAS / "traceroute" /
                                  "pierky_msm1033154_wikipedia_esams.jsonl"))
    window = window_from_rows(*EVERYTHING, batch.as_dicts("traceroute_hops"),
                              enricher=enricher, registry=registry)
    assert len(window.vantages) > 20
    found = {f.subject: f for f in anycast.detect(window)}
    # probe 4484's registered position (Ethiopia) is wrong: it reaches Amsterdam in 25 ms.
    # A proof resting on one vantage point is never "high".
    if "91.198.174.225" in found:
        finding = found["91.198.174.225"]
        assert finding.confidence == "medium"
        assert finding.evidence["proof_rests_on_one_vantage_point"]
    assert all(f.confidence != "high" for f in found.values())


def test_us_transit_with_rtt_evidence() -> None:
    enricher, registry = open_enricher(JurisdictionSettings(atlas_probe_files=PROBE_FILES))
    batch = normalized(read_lines(ATLAS / "traceroute" / "ripe_atlas_tools_tests.jsonl"))
    window = window_from_rows(*EVERYTHING, batch.as_dicts("traceroute_hops"),
                              enricher=enricher, registry=registry)
    findings = us_transit.detect(window)
    assert findings
    for finding in findings:
        for crossing in finding.evidence["crossings"]:
            # physics allowed it: the bound reaches the US (or no bound could be applied)
            if crossing["bound_km"] is not None and crossing["us_distance_km"] is not None:
                assert crossing["bound_km"] + 1e-6 >= crossing["us_distance_km"] - 2000
        assert "crosses the US" in finding.summary
    every = detect_all(window)
    assert {f.finding_id for f in findings} <= {f.finding_id for f in every}


def test_wikipedia_single_trace_balancers_are_found_with_low_confidence() -> None:
    """msm 1033154 (wikipedia-lb.esams, known load balancing): ground truth is every trace
    where one Paris flow got answers from two interfaces at one hop and the paths meet
    again (read off the raw results below, independently of the detector)."""
    lines = list(read_lines(ATLAS / "traceroute" / "pierky_msm1033154_wikipedia_esams.jsonl"))
    truth = set()
    for result in lines:
        hops = [[r["from"] for r in h.get("result", []) if "from" in r and "late" not in r]
                for h in result["result"]]
        for index in range(1, len(hops) - 1):
            if len(set(hops[index])) > 1 and hops[index - 1] and hops[index + 1]:
                truth.add((result["prb_id"], hops[index - 1][0], hops[index + 1][0]))
    assert len(truth) >= 4
    window = window_from_rows(*EVERYTHING, normalized(lines).as_dicts("traceroute_hops"))
    found = {(int(v.split(":")[1]), f.evidence["divergence"], f.evidence["convergence"])
             for f in load_balancer.detect(window) for v in f.vantage_keys}
    assert truth <= found  # recall 1.0 on what one trace can show
    for finding in load_balancer.detect(window):
        assert finding.evidence["mode"] == "per_packet"
        assert finding.confidence in ("low", "high")
