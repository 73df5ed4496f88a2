"""Confirmation pings: a hop claimed in the US by a geo database alone is pinged from a few
RIPE Atlas probes near the claimed location and near the alternative in Europe.

Requests (:class:`~schemas.confirm.ConfirmationRequest`) come from the analysis on
:data:`~schemas.topics.CONFIRM_REQUESTS`. :meth:`Confirmer.enqueue` queues them (state file
``<data_dir>/atlas-confirm.json``; an address queued, or pinged within ``cooldown_s``, is
not queued again; at most ``queue_max`` wait, the oldest are dropped and counted; an invalid
request goes to the dead-letter topic with the reason).
:meth:`Confirmer.run` (the ``confirm`` job) then, for each queued request in order:

1. picks probes near each location through the probe API (``radius=lat,lon:km``, connected
   probes with ``system-ipv<af>-works``, radii ``search_radii_km`` tried in order; the
   claim's probes in the claimed country; by ``country_code`` alone when the request has no
   coordinates), ``probes_per_location`` each, nearest first;
2. admits it when its credits (``probes x ping_credits x oneoff_multiplier``) fit the
   rest of today's ``daily_credits`` (UTC day) and fewer than ``max_concurrent``
   confirmations are being collected; otherwise it waits for the next run (or day);
3. creates one one-off ping measurement (cousteau ``Ping``, ``ping_packets`` packets, tags
   ``<atlas.tag>`` and ``gw-confirm``) from those probes to the address, and hands its id
   to the collector, which streams and backfills its results onto the results topic like
   any other measurement (they end up in ``ping_results``), for ``collect_s``.

:func:`dry_run_entries` shows the queue as ``plan --dry-run`` prints it: the probe searches
and the create request each entry needs, and its credits. Nothing is sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from scheduler.jsonstate import JsonState
from scheduler.metrics import CREDITS_SPENT
from scheduler.settings import AtlasSettings
from schemas.bus import Bus, Message
from schemas.confirm import ConfirmationRequest
from schemas.errors import AtlasAPIError, AtlasAuthError, AtlasRateLimited
from schemas.topics import DEAD_LETTERS, dead_letter_record

LOG = logging.getLogger(__name__)
PROBES_PATH = "/api/v2/probes/"
CONFIRM_TAG = "gw-confirm"


class ConfirmAPI(Protocol):
    def probes(self, **filters: Any) -> list[dict[str, Any]]: ...

    def create(self, definitions: Any, sources: Any, is_oneoff: bool) -> list[int]: ...


def locations(request: ConfirmationRequest) -> list[tuple[str, float | None, float | None, str]]:
    """``(role, latitude, longitude, country)`` of the places to ping from."""
    out = [("claim", request.claimed_latitude, request.claimed_longitude,
            request.claimed_country)]
    if request.alternative_country or request.alternative_latitude is not None:
        out.append(("alternative", request.alternative_latitude,
                    request.alternative_longitude, request.alternative_country))
    return out


def search_filters(
    latitude: float | None, longitude: float | None, country: str, radius_km: int, af: int,
    *, same_country: bool = False,
) -> dict[str, Any]:
    """Probe API filters for connected probes near a place (or in a country). The claim's
    probes must stand in the claimed country (``same_country``): only a probe in the US
    answering fast proves the US."""
    near: dict[str, Any] = (
        {"radius": f"{latitude:.4f},{longitude:.4f}:{radius_km}"}
        if latitude is not None and longitude is not None
        else {"country_code": country}
    )
    if same_country and country:
        near["country_code"] = country
    return {**near, "status": 1, "tags": f"system-ipv{af}-works", "page_size": 500}


def nearest(probes: Iterable[dict[str, Any]], latitude: float | None,
            longitude: float | None, count: int, exclude: set[int]) -> list[int]:
    """The ``count`` probes nearest to the place (equirectangular ranking is enough to
    order probes that the API already found within the radius); by id without a place."""
    ranked: list[tuple[float, int]] = []
    for probe in probes:
        probe_id = probe.get("id")
        coordinates: list[Any] = list((probe.get("geometry") or {}).get("coordinates") or [])
        if not isinstance(probe_id, int) or probe_id in exclude:
            continue
        if latitude is None or longitude is None or len(coordinates) < 2:
            ranked.append((float(probe_id), probe_id))
            continue
        lon, lat = float(coordinates[0]), float(coordinates[1])
        x = math.radians(lon - longitude) * math.cos(math.radians((lat + latitude) / 2))
        ranked.append((math.hypot(x, math.radians(lat - latitude)), probe_id))
    return [probe_id for _, probe_id in sorted(ranked)[:count]]


def ping_definition(request: ConfirmationRequest, atlas: AtlasSettings) -> dict[str, Any]:
    """Arguments of cousteau's ``Ping`` for one confirmation."""
    return {
        "af": request.address_family,
        "target": request.address,
        "packets": atlas.confirm.ping_packets,
        "description": f"grenswacht confirmation: is {request.address} in "
        f"{request.claimed_country}?",
        "tags": [atlas.tag, CONFIRM_TAG],
    }


def credits_for(probe_count: int, atlas: AtlasSettings) -> int:
    return probe_count * atlas.confirm.ping_credits * atlas.oneoff_multiplier


def _today(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d")


class Confirmer:
    """The constructor does no I/O; ``state`` is loaded by the caller."""

    def __init__(
        self,
        client: ConfirmAPI,
        atlas: AtlasSettings,
        state: JsonState,
        *,
        on_created: Callable[[int], None] | None = None,
        dead_letters: Bus | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.atlas = atlas
        self.state = state
        self.on_created = on_created
        self.dead_letters = dead_letters
        self.clock = clock
        self.invalid = 0
        self.refused = 0

    # -- state ------------------------------------------------------------------------------
    @property
    def queue(self) -> list[dict[str, Any]]:
        queue: list[dict[str, Any]] = self.state.data.setdefault("queue", [])
        return queue

    @property
    def sent(self) -> dict[str, dict[str, Any]]:
        sent: dict[str, dict[str, Any]] = self.state.data.setdefault("sent", {})
        return sent

    def spent_today(self, now: float) -> int:
        return int(self.state.data.get("spent", {}).get(_today(now), 0))

    def active_ids(self, now: float | None = None) -> set[int]:
        """Confirmation measurements whose results are still collected."""
        now = self.clock() if now is None else now
        with self.state.lock:
            return {int(s["msm_id"]) for s in self.sent.values()
                    if float(s.get("collect_until", 0)) > now}

    # -- in ---------------------------------------------------------------------------------
    def enqueue(self, messages: Iterable[Message]) -> int:
        """Queue the requests in ``messages``; return how many were queued."""
        now = self.clock()
        cfg = self.atlas.confirm
        added = 0
        with self.state.lock:
            queued = {entry["request"]["address"] for entry in self.queue}
            for message in messages:
                try:
                    request = ConfirmationRequest.from_bytes(message.value)
                except ValidationError as exc:
                    self.invalid += 1
                    LOG.warning("dead-lettering an invalid confirmation request at %s/%d/%d",
                                message.topic, message.partition, message.offset)
                    if self.dead_letters is not None:
                        record = dead_letter_record(
                            message.topic, message.partition, message.offset, message.value,
                            "analysis", "scheduler-confirm", "invalid_confirmation_request",
                            str(exc))
                        self.dead_letters.publish(DEAD_LETTERS, orjson.dumps(record),
                                                  key=message.topic.encode())
                        self.dead_letters.flush()
                    continue
                last = self.sent.get(request.address)
                if request.address in queued or (
                    last is not None and now - float(last["created_at"]) < cfg.cooldown_s
                ):
                    continue
                self.queue.append({"request": request.model_dump(), "queued_at": now,
                                   "probes": None})
                queued.add(request.address)
                added += 1
            overflow = len(self.queue) - cfg.queue_max
            if overflow > 0:
                del self.queue[:overflow]
                self.state.data["dropped"] = int(self.state.data.get("dropped", 0)) + overflow
            self._prune(now)
            self.state.save()
        return added

    def _prune(self, now: float) -> None:
        cooldown = self.atlas.confirm.cooldown_s
        for address, entry in list(self.sent.items()):
            if now - float(entry["created_at"]) >= cooldown and float(
                entry.get("collect_until", 0)
            ) <= now:
                del self.sent[address]
        spent = self.state.data.setdefault("spent", {})
        for day in [d for d in spent if d < _today(now - 7 * 86400)]:
            del spent[day]

    # -- out --------------------------------------------------------------------------------
    def choose_probes(self, request: ConfirmationRequest) -> dict[str, list[int]]:
        """Probe ids per role (``claim``, ``alternative``) through the probe API."""
        cfg = self.atlas.confirm
        chosen: dict[str, list[int]] = {}
        taken: set[int] = set()
        for role, lat, lon, country in locations(request):
            found: list[int] = []
            radii = cfg.search_radii_km if lat is not None and lon is not None else [0]
            for radius in radii:
                probes = self.client.probes(**search_filters(
                    lat, lon, country, radius, request.address_family,
                    same_country=role == "claim"))
                found = nearest(probes, lat, lon, cfg.probes_per_location, taken)
                if len(found) >= cfg.probes_per_location:
                    break
            chosen[role] = found
            taken.update(found)
        return chosen

    def run(self) -> list[int]:
        """Send what the budget allows now; return the measurement ids created."""
        now = self.clock()
        cfg = self.atlas.confirm
        created: list[int] = []
        with self.state.lock:
            for entry in list(self.queue):
                if len(self.active_ids(now)) >= cfg.max_concurrent:
                    break
                request = ConfirmationRequest.model_validate(entry["request"])
                if entry.get("probes") is None:
                    entry["probes"] = self.choose_probes(request)
                    self.state.save()
                ids = sorted({p for group in entry["probes"].values() for p in group})
                if not ids:
                    LOG.warning("no RIPE Atlas probe found to confirm %s", request.address)
                    self.queue.remove(entry)
                    continue
                cost = credits_for(len(ids), self.atlas)
                if self.spent_today(now) + cost > cfg.daily_credits:
                    break  # in order: the next run (or day) sends it
                sources = [{"type": "probes", "value": ",".join(map(str, ids)),
                            "requested": len(ids)}]
                try:
                    msm_id = self.client.create(
                        [("ping", ping_definition(request, self.atlas))], sources, True)[0]
                except (AtlasRateLimited, AtlasAuthError):
                    raise  # transient, or needs the operator: the next run tries again
                except AtlasAPIError as exc:  # refused for good: not retried
                    LOG.error("confirmation of %s refused by RIPE Atlas: %s",
                              request.address, exc)
                    self.refused += 1
                    self.queue.remove(entry)
                    self.state.save()
                    continue
                CREDITS_SPENT.inc(cost)
                spent = self.state.data.setdefault("spent", {})
                spent[_today(now)] = self.spent_today(now) + cost
                self.sent[request.address] = {
                    "msm_id": msm_id, "created_at": now, "credits": cost,
                    "collect_until": now + cfg.collect_s, "probes": entry["probes"],
                    "request": entry["request"],
                }
                self.queue.remove(entry)
                self.state.save()
                created.append(msm_id)
                LOG.info("confirmation ping %d: %s from %d probes (%d credits)", msm_id,
                         request.address, len(ids), cost)
                if self.on_created is not None:
                    self.on_created(msm_id)
        return created

    def status(self) -> dict[str, Any]:
        now = self.clock()
        with self.state.lock:
            return {"queued": len(self.queue), "collecting": len(self.active_ids(now)),
                    "credits_today": self.spent_today(now),
                    "daily_credits": self.atlas.confirm.daily_credits,
                    "dropped": int(self.state.data.get("dropped", 0)), "invalid": self.invalid,
                    "refused": self.refused}


def dry_run_entries(
    state: JsonState, atlas: AtlasSettings, build_body: Callable[..., Any]
) -> list[dict[str, Any]]:
    """Each queued confirmation as ``plan --dry-run`` shows it: the probe searches (GET,
    free) it still needs, or the exact create request when its probes are chosen, and the
    credits it will cost (probes not chosen yet: ``probes_per_location`` per place)."""
    out: list[dict[str, Any]] = []
    cfg = atlas.confirm
    for entry in state.data.get("queue", []):
        request = ConfirmationRequest.model_validate(entry["request"])
        probes = entry.get("probes")
        searches = []
        if probes is None:
            for role, lat, lon, country in locations(request):
                radius = cfg.search_radii_km[0] if lat is not None and lon is not None else 0
                searches.append({"method": "GET", "path": PROBES_PATH, "params": search_filters(
                    lat, lon, country, radius, request.address_family,
                    same_country=role == "claim")})
            count = cfg.probes_per_location * len(locations(request))
            body = None
        else:
            ids = sorted({p for group in probes.values() for p in group})
            count = len(ids)
            body = build_body([("ping", ping_definition(request, atlas))],
                              [{"type": "probes", "value": ",".join(map(str, ids)),
                                "requested": len(ids)}], True)
        out.append({"address": request.address, "claimed_country": request.claimed_country,
                    "alternative_country": request.alternative_country,
                    "evidence": request.evidence, "searches": searches, "body": body,
                    "probes": count, "credits": credits_for(count, atlas)})
    return out
