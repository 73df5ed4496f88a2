"""What the loopback RIPE Atlas knows: keys and their permissions, measurements, recorded
real results (released over time, as a live measurement would produce them), the request
log and injected failures. Thread-safe; the HTTP and stream servers share one instance."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scheduler"
ATLAS_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "atlas"
# recorded real ping results the fake answers a created ping measurement with (relabelled
# with the new measurement id, the requested target and the requested probes)
PING_TEMPLATE = ATLAS_FIXTURES / "ping" / "pierky_msm3359986_anchor_selftest.jsonl"

PERMISSIONS = ("create", "stop", "list", "results")
DEMO_KEY = "0a1b2c3d-demo-key0-fake-atlas0000000"

# recorded real measurements the fake serves (file, metadata file)
RECORDED = {
    1033154: (
        "pierky_msm1033154_wikipedia_esams.jsonl",
        "pierky_msm1033154_measurement_meta_api_v1.json",
    ),
    3082698: ("pierky_msm3082698_facebook.jsonl", "pierky_msm3082698_measurement_meta_api_v1.json"),
    1071935: (
        "pierky_msm1071935_lroot_nsid.jsonl",
        "pierky_msm1071935_measurement_meta_api_v1.json",
    ),
}


def load_recorded(msm_id: int) -> list[bytes]:
    """The recorded real results of ``msm_id``, bytes as downloaded, in timestamp order."""
    lines = (FIXTURES / RECORDED[msm_id][0]).read_bytes().splitlines()
    raw = [line for line in lines if line.strip()]
    return sorted(raw, key=lambda line: (json.loads(line)["timestamp"], json.loads(line)["prb_id"]))


def recorded_probes() -> list[dict[str, Any]]:
    """Every recorded real probe API v2 object (``tests/fixtures/atlas/api/*probes_api_v2``),
    once each, in id order: the probes the fake knows."""
    by_id: dict[int, dict[str, Any]] = {}
    for path in sorted((ATLAS_FIXTURES / "api").glob("*probes_api_v2.json")):
        for probe in json.loads(path.read_text())["results"]:
            by_id.setdefault(int(probe["id"]), probe)
    return [by_id[i] for i in sorted(by_id)]


def _requested_probes(body: dict[str, Any]) -> list[int]:
    ids: list[int] = []
    for source in body.get("probes", []):
        if source.get("type") == "probes":
            ids += [int(v) for v in str(source["value"]).split(",") if v.strip()]
    return ids


def _ping_results(msm_id: int, target: str, probes: list[int]) -> list[bytes]:
    """One recorded real ping result per requested probe, relabelled."""
    templates = [json.loads(line) for line in PING_TEMPLATE.read_text().splitlines() if line]
    out = []
    for index, probe in enumerate(probes or [int(t["prb_id"]) for t in templates]):
        result = dict(templates[index % len(templates)])
        result.update(msm_id=msm_id, group_id=msm_id, prb_id=probe, dst_addr=target,
                      dst_name=target, timestamp=int(result["timestamp"]) + index)
        out.append(json.dumps(result, separators=(",", ":")).encode())
    return out


@dataclass
class Failure:
    status: int
    remaining: int
    retry_after: str | None
    path_prefix: str


@dataclass
class Measurement:
    meta: dict[str, Any]
    released: list[bytes] = field(default_factory=list)
    pending: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorized: bool


class FakeAtlasState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.keys: dict[str, set[str]] = {DEMO_KEY: set(PERMISSIONS)}
        self.measurements: dict[int, Measurement] = {}
        self.requests: list[LoggedRequest] = []
        self.failures: list[Failure] = []
        self.next_id = 90_000_001
        self.listeners: list[Callable[[int, bytes], None]] = []
        self.probes: list[dict[str, Any]] = recorded_probes()

    # -- set-up ------------------------------------------------------------------------------
    def add_key(self, key: str, permissions: tuple[str, ...] = PERMISSIONS) -> None:
        with self.lock:
            self.keys[key] = set(permissions)

    def add_recorded(self, msm_id: int, tags: tuple[str, ...] = ()) -> int:
        """Make a recorded real measurement known (status Ongoing, nothing released yet)."""
        meta = json.loads((FIXTURES / RECORDED[msm_id][1]).read_text())
        kind = meta["type"]["name"] if isinstance(meta["type"], dict) else meta["type"]
        obj = {
            "id": msm_id,
            "type": kind,
            "af": meta.get("af", 4),
            "description": meta.get("description", ""),
            "target": meta.get("dst_name"),
            "is_oneoff": meta.get("is_oneoff", False),
            "interval": meta.get("interval"),
            "status": {"id": 2, "name": "Ongoing"},
            "tags": list(tags),
            "is_public": True,
        }
        with self.lock:
            self.measurements[msm_id] = Measurement(obj, pending=load_recorded(msm_id))
        return msm_id

    def fail_next(
        self, status: int, count: int = 1, retry_after: str | None = None, path_prefix: str = "/"
    ) -> None:
        with self.lock:
            self.failures.append(Failure(status, count, retry_after, path_prefix))

    # -- time passes ---------------------------------------------------------------------------
    def release(self, msm_id: int, count: int | None = None) -> list[bytes]:
        """Let ``count`` more results of ``msm_id`` arrive (all pending when None): visible
        to the results endpoint and pushed to every stream subscriber."""
        with self.lock:
            msm = self.measurements[msm_id]
            n = len(msm.pending) if count is None else count
            batch, msm.pending = msm.pending[:n], msm.pending[n:]
            msm.released.extend(batch)
            listeners = list(self.listeners)
        for raw in batch:
            for listener in listeners:
                listener(msm_id, raw)
        return batch

    # -- used by the servers -----------------------------------------------------------------
    def take_failure(self, path: str) -> Failure | None:
        with self.lock:
            for failure in self.failures:
                if path.startswith(failure.path_prefix) and failure.remaining > 0:
                    failure.remaining -= 1
                    if failure.remaining == 0:
                        self.failures.remove(failure)
                    return failure
        return None

    def create(self, body: dict[str, Any], tags_source: str = "") -> list[int]:
        ids = []
        with self.lock:
            for definition in body["definitions"]:
                msm_id = self.next_id
                self.next_id += 1
                kind = definition["type"]
                template = {"traceroute": 1033154, "dns": 1071935}.get(kind, 1033154)
                if kind == "ping":
                    pending = _ping_results(msm_id, definition["target"],
                                            _requested_probes(body))
                else:
                    pending = [
                        re.sub(rb'"msm_id":\s*\d+', b'"msm_id":%d' % msm_id, raw, count=1)
                        for raw in load_recorded(template)
                    ]
                obj = {
                    "id": msm_id,
                    "type": kind,
                    "af": definition.get("af"),
                    "description": definition.get("description", ""),
                    "target": definition.get("target") or definition.get("query_argument"),
                    "is_oneoff": bool(body.get("is_oneoff")),
                    "interval": definition.get("interval"),
                    "status": {"id": 1, "name": "Scheduled"},
                    "tags": list(definition.get("tags", [])),
                    "is_public": True,
                    "definition": definition,
                    "probes": body["probes"],
                }
                self.measurements[msm_id] = Measurement(obj, pending=pending)
                ids.append(msm_id)
        return ids

    def results(
        self, msm_id: int, start: int | None, stop: int | None, probe_ids: set[int] | None
    ) -> list[bytes]:
        with self.lock:
            released = list(self.measurements[msm_id].released)
        out = []
        for raw in released:
            result = json.loads(raw)
            if start is not None and result["timestamp"] < start:
                continue
            if stop is not None and result["timestamp"] > stop:
                continue
            if probe_ids and result["prb_id"] not in probe_ids:
                continue
            out.append(raw)
        return out
